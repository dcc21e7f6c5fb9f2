"""Hand-written distributed training pieces shared by the SFT and GRPO loops."""
