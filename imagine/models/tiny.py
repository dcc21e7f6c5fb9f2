"""Fresh Qwen3-architecture models of any size, for CPU tests, the demo and benchmarks.

The trainer treats these exactly like a downloaded checkpoint (same transformers classes, same
state-dict names), so everything a test proves on a 100k-parameter model holds for Qwen3-8B's code
path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TinyModelSpec:
    vocab_size: int = 0  # 0: take it from the tokenizer
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = True
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02

    def validate(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        for name in ("hidden_size", "intermediate_size", "num_hidden_layers", "head_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


def qwen3_config(spec: TinyModelSpec, *, vocab_size: int | None = None, bos_token_id=None, eos_token_id=None,
                 pad_token_id=None):
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size or spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=spec.tie_word_embeddings,
        rope_theta=spec.rope_theta,
        rms_norm_eps=spec.rms_norm_eps,
        initializer_range=spec.initializer_range,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def build_tiny_model(spec: TinyModelSpec, *, vocab_size: int | None = None, seed: int = 0,
                     attn_implementation: str = "sdpa", tokenizer=None):
    """A randomly initialised ``Qwen3ForCausalLM``; the same seed gives the same weights everywhere."""
    import torch
    from transformers import Qwen3ForCausalLM

    ids = {}
    if tokenizer is not None:
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
        vocab_size = vocab_size or len(tokenizer)
    if not (vocab_size or spec.vocab_size):
        raise ValueError("a vocabulary size is needed: set vocab_size or pass the tokenizer")
    config = qwen3_config(spec, vocab_size=vocab_size, **ids)
    config._attn_implementation = attn_implementation
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    return model


def save_tiny_checkpoint(directory, *, sharpen: float = 1.0, tie: bool = True):
    """A 2-layer Qwen3 with a 300-token byte-level BPE, saved as a Hugging Face directory; (model, tokenizer).

    Engines, loaders and the GPU self-check need a real checkpoint on disk that builds in a second
    and needs no download. ``sharpen`` scales the embedding (and head) so logits are far from flat:
    a temperature error in a log-prob then shows as a large difference instead of hiding in a
    near-uniform distribution.
    """
    from pathlib import Path

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    from imagine.models.tokenizer import CHAT_TEMPLATE

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_end|>", "<think>", "</think>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["from Rockford to St. Petersburg", "Flight Number: F3573659", "<think>plan</think>"] * 20,
                            trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    hf_tok.chat_template = CHAT_TEMPLATE
    cfg = Qwen3Config(vocab_size=len(hf_tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, tie_word_embeddings=tie,
                      eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id,
                      max_position_embeddings=4096)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg).float()
    if sharpen != 1.0:
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(sharpen)
            if not tie:
                model.get_input_embeddings().weight.mul_(sharpen)
    model.save_pretrained(Path(directory))
    hf_tok.save_pretrained(Path(directory))
    return model, hf_tok


def teacher_forced(model, prompt: list[int], completion: list[int], temperature: float = 1.0):
    """log_softmax(logits / T) of transformers' forward at the given completion tokens.

    The yardstick for every engine's sampling log-probs: transformers' own forward, with no cache,
    no fused kernel and no sampler in between.
    """
    import torch

    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float()
    return torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]
