"""Test double of ``kernels.fused_linear_logprob`` (plain torch), used only while the real package is absent."""

import torch


def fused_linear_logprob(hidden, weight, targets, *, bias=None, temperature=1.0, return_entropy=False,
                         chunk_size=None, backend=None):
    logits = (hidden @ weight.t()).float()
    if bias is not None:
        logits = logits + bias.float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    valid = targets != -100
    picked = logp.gather(1, targets.clamp(min=0).unsqueeze(1)).squeeze(1) * valid
    entropy = -(logp.exp() * logp).sum(-1) if return_entropy else None
    return picked, entropy
