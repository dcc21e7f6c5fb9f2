"""What the trained model sees and is paid: its prompt (= the Reasoner's), the GRPO reward and task."""
