"""tiktoken encoder built from a Hugging Face byte-level BPE tokenizer, trusted only once verified.

Tokenizing tens of thousands of long agent traces with the HF tokenizer is a visible part of an SFT
start-up. tiktoken runs the same byte-level BPE in Rust with far less per-call overhead, but it
merges by *token rank* where HF merges by *merge rank*, and it knows nothing about normalizers or
added-token options. The two agree for the usual tokenizers (vocab ids assigned in merge order,
as BPE training and the Qwen vocabularies do), not for every tokenizer. So the encoder is only handed
out after it reproduces the HF ids on every text it will be asked to encode; otherwise
:class:`TokenizerMismatch` says where they differ and the caller stays on the HF tokenizer.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Sequence

from imagine.errors import UserError

# The GPT-2 pre-tokenization regex, which HF's ByteLevel(use_regex=True) applies.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class TokenizerMismatch(UserError, ValueError):
    """tiktoken cannot reproduce the HF tokenizer; the message names the first differing text."""


def _unicode_to_byte() -> dict[str, int]:
    """Inverse of the byte-level alphabet: printable bytes map to themselves, the rest to 256+i."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def _pattern_and_normalizer(spec: dict) -> tuple[str, str | None]:
    """The pre-tokenization regex and the (only supported) NFC normalizer of a tokenizer.json."""
    normalizer = spec.get("normalizer")
    norm = None
    if normalizer is not None:
        if normalizer.get("type") != "NFC":
            raise TokenizerMismatch(f"normalizer {normalizer.get('type')!r} has no tiktoken equivalent")
        norm = "NFC"
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel":
        if pre.get("add_prefix_space"):
            raise TokenizerMismatch("ByteLevel(add_prefix_space=True) has no tiktoken equivalent")
        if not pre.get("use_regex", True):
            raise TokenizerMismatch("ByteLevel without a split regex has no tiktoken equivalent")
        return GPT2_PATTERN, norm
    if pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers", [])
        if (len(parts) == 2 and parts[0].get("type") == "Split" and parts[0].get("behavior") == "Isolated"
                and "Regex" in parts[0].get("pattern", {}) and parts[1].get("type") == "ByteLevel"
                and not parts[1].get("use_regex", True) and not parts[1].get("add_prefix_space")):
            return parts[0]["pattern"]["Regex"], norm
    raise TokenizerMismatch(f"pre-tokenizer {pre.get('type')!r} is not a supported byte-level layout")


class FastTokenizer:
    """``encode(text) -> ids`` through tiktoken; identical to the HF tokenizer it was built from."""

    def __init__(self, hf_tokenizer):
        import tiktoken

        backend = getattr(hf_tokenizer, "backend_tokenizer", None) or getattr(hf_tokenizer, "_tokenizer", None)
        if backend is None:
            raise TokenizerMismatch("the tokenizer has no fast (tokenizers) backend to read a BPE from")
        spec = json.loads(backend.to_str())
        model = spec.get("model", {})
        if model.get("type") != "BPE":
            raise TokenizerMismatch(f"model type {model.get('type')!r} is not BPE")
        pattern, self._normalizer = _pattern_and_normalizer(spec)
        u2b = _unicode_to_byte()
        added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        ranks: dict[bytes, int] = {}
        for token, token_id in model["vocab"].items():
            if token in added:
                continue
            try:
                ranks[bytes(u2b[ch] for ch in token)] = token_id
            except KeyError as exc:
                raise TokenizerMismatch(f"vocab token {token!r} is not in the byte-level alphabet") from exc
        self.special_tokens = added
        self.encoding = tiktoken.Encoding(
            name="imagine-fast", pat_str=pattern, mergeable_ranks=ranks, special_tokens=added
        )

    def encode(self, text: str) -> list[int]:
        if self._normalizer:
            text = unicodedata.normalize(self._normalizer, text)
        return self.encoding.encode(text, allowed_special="all")

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self._normalizer:
            texts = [unicodedata.normalize(self._normalizer, t) for t in texts]
        return self.encoding.encode_batch(list(texts), allowed_special="all")


def hf_encode_batch(hf_tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return hf_tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def build_verified(hf_tokenizer, texts: Sequence[str]) -> tuple[FastTokenizer, dict]:
    """Build the tiktoken encoder and check it on every text; return it with timing numbers.

    Raises :class:`TokenizerMismatch` naming the first text (and token position) that differs.
    """
    fast = FastTokenizer(hf_tokenizer)
    t0 = time.perf_counter()
    reference = hf_encode_batch(hf_tokenizer, texts)
    t1 = time.perf_counter()
    candidate = fast.encode_batch(texts)
    t2 = time.perf_counter()
    for i, (ref, got) in enumerate(zip(reference, candidate)):
        if ref != got:
            pos = next((k for k, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
            raise TokenizerMismatch(
                f"tiktoken and the HF tokenizer disagree on text #{i} at token {pos} "
                f"(HF {ref[pos:pos + 3]}, tiktoken {got[pos:pos + 3]}; text starts {texts[i][:60]!r}); "
                "set data.tokenizer_backend=hf"
            )
    hf_s, fast_s = t1 - t0, t2 - t1
    stats = {"texts": len(texts), "hf_seconds": hf_s, "tiktoken_seconds": fast_s,
             "speedup": hf_s / fast_s if fast_s > 0 else float("inf")}
    return fast, stats
