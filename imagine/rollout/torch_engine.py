"""A pure-PyTorch engine over a transformers causal LM: slow, but needs nothing beyond torch.

Tests, resume-equality checks and machines without vLLM run every loop through it. Sampling is exact
(``log_softmax(logits / T)``) and seeded per prompt, so a completion does not depend on the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from imagine.rollout.base import NameCheck, Rollout, SamplingConfig, full_state


def pad_token_id(tokenizer) -> int:
    """The pad id, falling back to EOS for tokenizers that define none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class TorchEngine:
    """Batched sampling with a KV cache and left padding."""

    def __init__(self, model, tokenizer, *, batch_size: int = 16):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @torch.no_grad()
    def generate(self, prompts: Sequence[list[int]], sampling: SamplingConfig) -> list[Rollout]:
        device = next(self.model.parameters()).device
        base_seed = sampling.seed if sampling.seed is not None else 0
        stop = set(sampling.stop_token_ids) | {self.tokenizer.eos_token_id}
        pad_id = pad_token_id(self.tokenizer)
        jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(sampling.n)]
        # One generator per (prompt, sample): a draw never depends on batch size or neighbours.
        gens = []
        for i in range(len(prompts)):
            for j in range(sampling.n):
                gens.append(torch.Generator(device="cpu"))
                gens[-1].manual_seed((base_seed + i) * 65_537 + j)
        rollouts: list[Rollout] = []
        was_training = self.model.training
        self.model.eval()
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start:start + self.batch_size]
            width = max(len(p) for _, p in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (_, p) in enumerate(batch):
                ids[row, width - len(p):] = torch.tensor(p)
                mask[row, width - len(p):] = 1
            ids, mask = ids.to(device), mask.to(device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1]
            done = torch.zeros(len(batch), dtype=torch.bool)
            tokens: list[list[int]] = [[] for _ in batch]
            lps: list[list[float]] = [[] for _ in batch]
            for _ in range(sampling.max_tokens):
                logp = torch.log_softmax(logits.float() / max(sampling.temperature, 1e-6), -1).cpu()
                probs = logp.exp()
                if sampling.top_p < 1.0:
                    probs = _top_p(probs, sampling.top_p)
                nxt = torch.stack([torch.multinomial(probs[row], 1, generator=gens[start + row])[0]
                                   for row in range(len(batch))])
                for row in range(len(batch)):
                    if not done[row]:
                        tokens[row].append(int(nxt[row]))
                        lps[row].append(float(logp[row, nxt[row]]))
                        if int(nxt[row]) in stop:
                            done[row] = True
                if bool(done.all()):
                    break
                mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype, device=device)], 1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=nxt[:, None].to(device), attention_mask=mask, position_ids=positions,
                                 past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[:, -1]
            for row, (i, p) in enumerate(batch):
                finish = "stop" if tokens[row] and tokens[row][-1] in stop else "length"
                text = self.tokenizer.decode(tokens[row], skip_special_tokens=False)
                rollouts.append(Rollout(i, list(p), tokens[row], lps[row], text, finish))
        self.model.train(was_training)
        return rollouts

    def close(self) -> None:
        """Nothing to release; the engines share one lifecycle."""

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        own = full_state(self.model)
        check = NameCheck(named_tensors, set(own))
        with torch.no_grad():
            for name, tensor in check:
                own[name].copy_(tensor)
        check.verify()


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_p, order = probs.sort(-1, descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p
    sorted_p = sorted_p * keep
    return torch.zeros_like(probs).scatter(-1, order, sorted_p)
