"""Trainer settings (``configs/sft/*.yaml``, ``configs/grpo/*.yaml`` + ``key=value`` overrides).

The optimisation settings both loops share live in :class:`StepConfig`; each loop adds its own batch shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from imagine.models.tiny import TinyModelSpec
from imagine.train.losses import LossConfig
from imagine.train.profiling import ProfileConfig


@dataclass
class ModelConfig:
    path: str | None = None  # a Hugging Face causal-LM directory ...
    init_from_config: TinyModelSpec | None = None  # ... or a fresh Qwen3-architecture model
    init_seed: int = 0
    tokenizer: str | None = None  # defaults to `path`
    # Fresh models only: train a byte-level BPE of this size on the training data when `tokenizer`
    # does not exist yet (0: the tokenizer must exist).
    train_tokenizer_vocab_size: int = 0
    # Its pre-tokenization: "words" (GPT-2's) or "lines" (merges across words within a line; shorter
    # sequences for structured data, see imagine/models/tokenizer.py).
    train_tokenizer_split: Literal["words", "lines"] = "words"
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
    # torch.compile each decoder layer's forward (dynamic shapes; FSDP's hooks stay eager): fuses the
    # norms, rotary and casts around the matmuls. The first steps pay for the compiles (bench-grpo on
    # 2 CPU cores: 85-103 s from scratch, ~25 s from inductor's cache; its bf16 update 1.58 s -> 1.26 s).
    compile: bool = False
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
    # Also export <out_dir>/hf_step<N> at these steps (0: the untrained initialisation), e.g. the
    # intermediate SFT checkpoint GRPO starts from (the paper's step 800).
    export_hf_steps: list[int] = field(default_factory=list)


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
    profile: ProfileConfig = field(default_factory=ProfileConfig)  # profile.steps=[a, b]: traces per rank

    def validate(self) -> None:
        if self.data.max_seq_len > self.train.tokens_per_micro_batch:
            raise ValueError("data.max_seq_len must not exceed train.tokens_per_micro_batch "
                             "(a sample must fit one micro-batch)")


# --- GRPO -----------------------------------------------------------------------------------------


@dataclass
class PolicyModelConfig:
    path: str = ""  # a Hugging Face causal-LM directory: the SFT checkpoint GRPO starts from
    tokenizer: str | None = None  # defaults to `path`
    ref_path: str | None = None  # frozen KL reference; defaults to `path` (loaded only when loss.kl_coef > 0)
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = "auto"

    def validate(self) -> None:
        if not self.path:
            raise ValueError("path is required (the SFT checkpoint to start from)")


@dataclass
class TaskConfig:
    name: str = "travelplanner"  # a registered task (imagine.train.task.TASKS) or "package.module:factory"
    options: dict = field(default_factory=dict)  # the task's own settings, checked by the task


@dataclass
class RolloutConfig:
    engine: Literal["vllm", "torch"] = "vllm"
    group_size: int = 8  # G completions per prompt
    prompts_per_step: int = 8  # global, for any world size (a multiple of it)
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024  # the response-length cap
    max_model_len: int = 4096  # vLLM context (prompt + response)
    gpu_memory_utilization: float | None = None  # vLLM; None: 0.6 on CUDA, 0.3 on CPU
    enforce_eager: bool = True  # vLLM; false compiles the model (CUDA graphs on GPUs): ~10 s more start-up, 1.17x sampling on CPU (bench)
    kv_cache_gib: float | None = None  # vLLM's KV cache, fixed; None: sized by the above (CUDA) or 1 GiB (CPU)
    sleep_between_steps: bool = False  # colocated on a GPU: free vLLM's memory during the update
    # The engine's weights and compute. auto: the update's precision (fp32 -> float32, bf16 -> bfloat16),
    # so the two sides differ only by kernels. vLLM's own "auto" would sample an fp32 checkpoint in
    # bf16 on CPU, which on CPUs without native bf16 (AVX2) halves its tokens/s.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # TorchEngine rows per forward. More is faster while memory allows: 64 rows sampled 1.65x the tokens/s
    # of 16 for bench-grpo's 64 short sequences on CPU. 16 keeps the KV cache small for long prompts.
    torch_batch_size: int = 16
    # 1: sample step k+1 in a background thread (with the weights before step k's update) while step k
    # updates, so every batch is one update old and truncated IS corrects for it; 0: on-policy.
    async_steps: int = 0
    # DAPO's dynamic sampling: drop groups whose rewards are all equal (no signal) and sample more
    # prompts, up to max_sampling_rounds rounds, until prompts_per_step informative groups are found.
    dynamic_sampling: bool = False
    max_sampling_rounds: int = 3
    overlong: Literal["keep", "filter", "penalize"] = "keep"  # completions cut by max_tokens
    overlong_penalty: float = -1.0  # added to the reward with overlong=penalize

    def validate(self) -> None:
        for name in ("group_size", "prompts_per_step", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.top_p != 1.0:
            raise ValueError("top_p must be 1: the engines report log-probs of the untruncated distribution, "
                             "which the importance weights need")
        if self.kv_cache_gib is not None and self.kv_cache_gib <= 0:
            raise ValueError("kv_cache_gib must be positive (or null)")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 (GRPO needs samples, not greedy decoding)")
        if self.async_steps not in (0, 1):
            raise ValueError(f"async_steps must be 0 (on-policy) or 1 (one step off-policy), got {self.async_steps}")
        if self.async_steps and self.sleep_between_steps:
            raise ValueError("async_steps=1 samples during the update, so the engine cannot sleep then "
                             "(sleep_between_steps=false)")


@dataclass
class AdvantageConfig:
    estimator: Literal["grpo", "rloo", "dr_grpo"] = "grpo"  # kernels.advantage modes
    normalize_std: bool = True  # divide by the std (ignored by dr_grpo)
    std_scope: Literal["group", "batch"] = "group"


@dataclass
class GRPOStepConfig(StepConfig):
    epochs: int = 1  # passes over each rollout batch
    mini_batches: int = 1  # optimizer steps per pass; epochs * mini_batches > 1 computes old log-probs
    micro_batch_size: int = 8  # sequences per forward, per rank
    # Pack each prompt once per micro-batch with its completions, instead of once per completion:
    # fewer tokens through the update when prompts are long (SDPA or eager attention, not flash-attn).
    share_prompts: bool = False

    def validate(self) -> None:
        super().validate()
        for name in ("epochs", "mini_batches", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class GRPOLogConfig(LogConfig):
    wandb_project: str = "imagine-grpo"
    run_name: str = "grpo"
    entropy: bool = True  # log the policy's entropy (one more reduction over the vocabulary per token)


@dataclass
class GRPOConfig:
    out_dir: str = "runs/grpo"
    model: PolicyModelConfig = field(default_factory=PolicyModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: GRPOStepConfig = field(default_factory=GRPOStepConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: GRPOLogConfig = field(default_factory=GRPOLogConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)  # profile.steps=[a, b]: traces per rank

    def validate(self) -> None:
        from imagine.config import ConfigError

        if self.rollout.group_size < 2 and self.advantage.normalize_std and self.advantage.estimator != "dr_grpo":
            raise ConfigError(f"rollout.group_size={self.rollout.group_size} with advantage.normalize_std=true: "
                              "a group of one has no standard deviation (use rollout.group_size >= 2)")
        if self.train.share_prompts and self.model.attn_implementation not in ("auto", "sdpa", "eager"):
            raise ConfigError(f"train.share_prompts=true with model.attn_implementation="
                              f"{self.model.attn_implementation}: packed prompts need a custom attention mask, "
                              "which only sdpa and eager take")
        if self.rollout.async_steps and self.loss.is_cap is None:
            raise ConfigError("rollout.async_steps=1 with loss.is_cap=null: every batch is one update old, and "
                              "the truncated IS weight is what corrects for it (set loss.is_cap, e.g. 2.0)")
        if self.rollout.group_size < 2 and self.advantage.estimator == "rloo":
            raise ConfigError("advantage.estimator=rloo needs rollout.group_size >= 2 (leave-one-out baseline)")
        if self.loss.aggregation == "seq_mean_token_sum_norm" or (
                self.loss.aggregation is None and self.loss.name == "dr_grpo"):
            if self.loss.norm_constant < 0:
                raise ConfigError("loss.norm_constant must be >= 0")
