"""Trainer settings (``configs/sft/*.yaml``, ``configs/grpo/*.yaml`` + ``key=value`` overrides).

The optimisation settings both loops share live in :class:`StepConfig`; each loop adds its own batch shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from imagine.models.tiny import TinyModelSpec


@dataclass
class ModelConfig:
    path: str | None = None  # a Hugging Face causal-LM directory ...
    init_from_config: TinyModelSpec | None = None  # ... or a fresh Qwen3-architecture model
    init_seed: int = 0
    tokenizer: str | None = None  # defaults to `path`
    # Fresh models only: train a byte-level BPE of this size on the training data when `tokenizer`
    # does not exist yet (0: the tokenizer must exist).
    train_tokenizer_vocab_size: int = 0
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = "auto"

    def validate(self) -> None:
        if (self.path is None) == (self.init_from_config is None):
            raise ValueError("set exactly one of model.path and model.init_from_config")
        if self.path is None and self.tokenizer is None:
            raise ValueError("model.init_from_config needs model.tokenizer (a directory)")


@dataclass
class DataConfig:
    train_path: str = ""
    max_seq_len: int = 4096
    overlong: Literal["truncate", "truncate_left", "skip", "error"] = "truncate"
    batching: Literal["pack", "pad"] = "pack"
    shuffle: bool = True
    tokenizer_backend: Literal["hf", "tiktoken"] = "hf"

    def validate(self) -> None:
        if not self.train_path:
            raise ValueError("data.train_path is required")
        if self.max_seq_len < 2:
            raise ValueError("data.max_seq_len must be at least 2")


@dataclass
class StepConfig:
    """What an optimizer step needs, whatever produced the batch (SFT data or GRPO rollouts)."""
    seed: int = 0
    max_steps: int = 100
    lr: float = 1e-5
    min_lr_ratio: float = 0.1
    warmup_steps: int = 0
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float = 1.0
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    activation_checkpointing: bool = False
    cpu_offload: bool = False
    device: Literal["auto", "cuda", "cpu"] = "auto"
    # When FSDP reduce-scatters gradients: after every micro-batch (sharded gradients only, more
    # communication) or after the last one (fewer collectives, but every rank holds unsharded fp32
    # gradients meanwhile: 32 GB at 8B). auto: every micro-batch when those would not fit comfortably.
    grad_sync: Literal["auto", "every_micro_batch", "last_micro_batch"] = "auto"

    def validate(self) -> None:
        if self.max_steps < 1:
            raise ValueError("max_steps must be positive")
        if len(self.betas) != 2:
            raise ValueError("betas must hold two numbers")


@dataclass
class TrainConfig(StepConfig):
    samples_per_step: int = 8  # global batch, in conversations, for any world size
    tokens_per_micro_batch: int = 4096  # per rank: a packed row's capacity / a padded batch's slots

    def validate(self) -> None:
        super().validate()
        if self.samples_per_step < 1:
            raise ValueError("samples_per_step must be positive")


@dataclass
class CheckpointConfig:
    every: int = 100  # steps between checkpoints (0: only at the end)
    keep_last: int = 2
    keep_steps: list[int] = field(default_factory=list)  # kept forever, e.g. [800] where RL starts
    resume: str = "auto"  # auto (latest under out_dir), none, or a checkpoint directory
    export_hf: bool = True  # write <out_dir>/hf at the end
    export_dtype: Literal["float32", "bfloat16", "float16"] = "float32"


@dataclass
class LogConfig:
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    wandb_project: str = "imagine-sft"
    run_name: str = "sft"


@dataclass
class SFTConfig:
    out_dir: str = "runs/sft"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def validate(self) -> None:
        if self.data.max_seq_len > self.train.tokens_per_micro_batch:
            raise ValueError("data.max_seq_len must not exceed train.tokens_per_micro_batch "
                             "(a sample must fit one micro-batch)")
