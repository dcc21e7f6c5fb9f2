"""imagine: fold a multi-agent planning system into one small model (IMAGINE, arXiv 2510.14406)."""

__version__ = "0.1.0"
