"""Train a small byte-level BPE tokenizer and save it in the Hugging Face format.

From-scratch demo models need a tokenizer that transformers, vLLM and our tiktoken fast path can
all load, so it is a plain byte-level BPE (GPT-2 pre-tokenization, no normalizer) saved with
``save_pretrained``. The chat template is ChatML like Qwen3's: the same ``<|im_start|>``/
``<|im_end|>`` framing, ``<think>``/``</think>`` as ordinary added tokens (they must survive
``skip_special_tokens`` decoding, the reward parses them), ``enable_thinking=False`` appending an
empty think block, and ``{% generation %}`` markers so ``return_assistant_tokens_mask`` (TRL's
``assistant_only_loss``) works with it.

    python -m imagine.models.tokenizer --data train.jsonl --vocab-size 1000 --out DIR
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Pre-tokenization. "words" is GPT-2's split (a token never crosses a word or punctuation boundary).
# "lines" lets merges cross words and punctuation inside a line, and cuts digit runs into pairs:
# recurring phrases such as '", "transportation": "' become single tokens (the demo's structured
# samples take half as many tokens), while a number is tokenized the same wherever it appears and
# from 110 frequent digit tokens, so a small model can learn to copy flight numbers, dates and prices
# from the prompt (with BPE-merged digit runs, each long number is a rare token it never learns to
# copy). The pattern covers every character, as tiktoken (the fast path) needs.
LINES_PATTERN = r"\p{N}{1,2}|[^\p{N}\n]+|\n+"
SPLITS = ("words", "lines")
THINK_TOKENS = ["<think>", "</think>"]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation -%}{{ message['content'] + '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif -%}"
    "{%- endif -%}"
)


def conversation_texts(path: str | Path) -> Iterator[str]:
    """Every message content of a ``{"messages": [...]}`` JSONL file (the tokenizer's corpus)."""
    from imagine.io import DataError, iter_jsonl

    for line_no, rec in iter_jsonl(path):
        messages = rec.get("messages") if isinstance(rec, dict) else None
        if not isinstance(messages, list):
            raise DataError(f"{path}:{line_no}: expected an object with a 'messages' list")
        for msg in messages:
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                yield msg["content"]


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path, *, model_max_length: int = 32768,
                    split: str = "words"):
    """Train the BPE on ``texts``, save it to ``out_dir`` and return the transformers tokenizer."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if split not in SPLITS:
        raise ValueError(f"unknown tokenizer split {split!r} (expected one of {', '.join(SPLITS)})")
    base = len(pre_tokenizers.ByteLevel.alphabet()) + len(SPECIAL_TOKENS) + len(THINK_TOKENS)
    if vocab_size <= base:
        raise ValueError(f"vocab_size must exceed {base} (256 bytes + special tokens), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    if split == "lines":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LINES_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(THINK_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        max_token_length=16 if split == "lines" else None,  # whole lines would crowd out the pieces
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=model_max_length,
    )
    hf.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out_dir))
    return hf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="JSONL of {'messages': [...]} to learn merges from")
    parser.add_argument("--vocab-size", type=int, default=1000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="words", choices=SPLITS, help="pre-tokenization (see LINES_PATTERN)")
    args = parser.parse_args(argv)
    hf = train_tokenizer(conversation_texts(args.data), args.vocab_size, args.out, split=args.split)
    print(f"saved a {len(hf)}-token byte-level BPE to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
