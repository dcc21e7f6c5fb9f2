"""Model builders and tokenizers for tiny from-scratch models (tests, demo, benchmarks)."""
