"""A self-hosted model through vLLM's offline ``LLM`` engine.

vLLM is optional (``make install-vllm`` on CPU, ``pip install -e .[gpu]`` on CUDA), so it is imported
when the backend is built. The engine is shared by every role naming the same model (loading it twice
would double GPU memory), and one engine runs one ``generate`` at a time, so concurrent chat calls
are micro-batched: the first request waits ``batch_wait_s`` for others, then the whole batch goes to
the engine in one call, where vLLM's continuous batching makes it nearly as fast as one request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from imagine.errors import UserError
from imagine.mas.backends.base import BackendError, ChatContext, ChatResult
from imagine.mas.config import RoleConfig

_ENGINES: dict[str, tuple[Any, threading.Lock]] = {}
_ENGINE_LOCK = threading.Lock()


def _engine(model: str, args: dict) -> tuple[Any, threading.Lock]:
    try:
        from vllm import LLM  # noqa: PLC0415 - optional heavy dependency
    except ImportError as exc:
        raise UserError("backend 'vllm' needs vLLM: install it with `make install-vllm` (CPU) or "
                        "`pip install -e .[gpu]` (CUDA)") from exc
    with _ENGINE_LOCK:
        if model not in _ENGINES:
            # LLM is not thread-safe: the lock serialises generate() across every role sharing it
            _ENGINES[model] = (LLM(model=model, **args), threading.Lock())
        return _ENGINES[model]


def split_reasoning(text: str) -> tuple[str, str | None]:
    """Reasoning models served offline write ``<think>...</think>`` inline; separate it as the APIs do."""
    if "</think>" not in text:
        return text, None
    head, tail = text.split("</think>", 1)
    return tail.strip(), head.replace("<think>", "", 1).strip()


class VLLMLocalBackend:
    def __init__(self, role: RoleConfig, batch_wait_s: float = 0.02, max_batch: int = 256):
        self.role = role
        self.llm, self._lock = _engine(role.model, dict(role.vllm_args))
        self.batch_wait_s, self.max_batch = batch_wait_s, max_batch
        self.generate_calls = 0  # how many engine calls served the chats (observability, tests)
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def _params(self) -> Any:
        from vllm import SamplingParams  # noqa: PLC0415

        return SamplingParams(temperature=self.role.temperature, top_p=self.role.top_p,
                              max_tokens=self.role.max_tokens)

    def _generate(self, conversations: list[list[dict]]) -> list[Any]:
        with self._lock:
            self.generate_calls += 1
            return self.llm.chat(conversations, self._params(), use_tqdm=False)

    async def _batcher(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(self.batch_wait_s)
            while not self._queue.empty() and len(batch) < self.max_batch:
                batch.append(self._queue.get_nowait())
            start = time.monotonic()
            try:
                outputs = await asyncio.to_thread(self._generate, [messages for messages, _ in batch])
            except Exception as exc:  # noqa: BLE001 - becomes each query's recorded failure reason
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(BackendError(f"vLLM generate failed: {type(exc).__name__}: {exc}"))
                continue
            latency = time.monotonic() - start
            for (_, fut), out in zip(batch, outputs):
                text, reasoning = split_reasoning(out.outputs[0].text)
                usage = {"prompt_tokens": len(out.prompt_token_ids or []),
                         "completion_tokens": len(out.outputs[0].token_ids or [])}
                if not fut.done():
                    fut.set_result(ChatResult(text, reasoning, usage, latency))

    async def chat(self, messages: list[dict], *, context: ChatContext | None = None, **sampling) -> ChatResult:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._batcher())
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((messages, fut))
        return await fut

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker, self._queue = None, None
