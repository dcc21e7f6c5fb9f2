"""A self-hosted model through vLLM's offline ``LLM`` engine.

vLLM is optional (``pip install -e .[gpu]``), so it is imported when the backend is built, and the
engine is shared by every role naming the same model: loading a model twice would double GPU memory.
Each chat call runs in a worker thread, one at a time per engine (``LLM`` is not thread-safe), so
the asyncio runner keeps scripted and HTTP roles moving while the engine generates.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from imagine.cli import UserError
from imagine.mas.backends.base import BackendError, ChatContext, ChatResult
from imagine.mas.config import RoleConfig

_ENGINES: dict[str, Any] = {}
_ENGINE_LOCK = threading.Lock()


def _engine(model: str, args: dict) -> Any:
    try:
        from vllm import LLM  # noqa: PLC0415 - optional heavy dependency
    except ImportError as exc:
        raise UserError("backend 'vllm' needs vLLM: install it with `make install-vllm` (CPU) or "
                        "`pip install -e .[gpu]` (CUDA)") from exc
    with _ENGINE_LOCK:
        if model not in _ENGINES:
            _ENGINES[model] = LLM(model=model, **args)
        return _ENGINES[model]


def split_reasoning(text: str) -> tuple[str, str | None]:
    """Reasoning models served offline write ``<think>...</think>`` inline; separate it as the APIs do."""
    if "</think>" not in text:
        return text, None
    head, tail = text.split("</think>", 1)
    return tail.strip(), head.replace("<think>", "", 1).strip()


class VLLMLocalBackend:
    def __init__(self, role: RoleConfig):
        self.role = role
        self.llm = _engine(role.model, dict(role.vllm_args))
        self._lock = threading.Lock()  # LLM is not thread-safe: one generate() at a time per engine

    async def chat(self, messages: list[dict], *, context: ChatContext | None = None, **sampling) -> ChatResult:
        from vllm import SamplingParams  # noqa: PLC0415

        params = SamplingParams(temperature=sampling.get("temperature", self.role.temperature),
                                top_p=sampling.get("top_p", self.role.top_p),
                                max_tokens=sampling.get("max_tokens", self.role.max_tokens))
        start = time.monotonic()
        try:
            outputs = await asyncio.to_thread(self._generate, messages, params)
        except Exception as exc:  # noqa: BLE001 - recorded as the query's failure reason
            raise BackendError(f"vLLM generate failed: {type(exc).__name__}: {exc}") from exc
        out = outputs[0]
        text, reasoning = split_reasoning(out.outputs[0].text)
        usage = {"prompt_tokens": len(out.prompt_token_ids or []),
                 "completion_tokens": len(out.outputs[0].token_ids or [])}
        return ChatResult(text, reasoning, usage, time.monotonic() - start)

    def _generate(self, messages: list[dict], params: Any) -> Any:
        with self._lock:
            return self.llm.chat([messages], params, use_tqdm=False)

    async def aclose(self) -> None:
        return None
