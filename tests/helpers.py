"""Builders shared by several test packages (import them; fixtures stay in the conftest files)."""

from __future__ import annotations

import torch

from imagine.models.tokenizer import CHAT_TEMPLATE


def tiny_model_and_tokenizer(tmp_path, *, sharpen: float = 1.0, tie: bool = True):
    """A 2-layer Qwen3 with a 300-token byte-level BPE, saved under ``tmp_path/m``.

    ``sharpen`` scales the embedding (and head) so logits are far from flat: a temperature error in
    a log-prob then shows as a large difference instead of hiding in a near-uniform distribution.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

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
    model.save_pretrained(tmp_path / "m")
    hf_tok.save_pretrained(tmp_path / "m")
    return model, hf_tok


def teacher_forced(model, prompt: list[int], completion: list[int], temperature: float = 1.0) -> torch.Tensor:
    """log_softmax(logits / T) of transformers' forward at the given completion tokens."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float()
    return torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in sessions of their own)."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started: a crash, not a shutdown."""
    import contextlib
    import os
    import signal

    for p in [*descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
