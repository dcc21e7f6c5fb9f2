"""Any OpenAI-compatible chat-completions endpoint (DeepSeek, Gemini's compatible API, ``vllm serve``).

Every failure mode a long teacher run meets is retried with bounded exponential backoff: 429 (honouring
Retry-After), 5xx, timeouts, dropped connections, and 200 replies whose body is not the JSON we
expect (truncated or garbage). Other 4xx (bad key, bad model) fail at once: retrying cannot help.
The API key is read from the environment at construction and scrubbed from every message we produce,
because servers sometimes echo request headers in their error bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from typing import Any

import aiohttp

from imagine.config import ConfigError
from imagine.mas.backends.base import BackendError, ChatContext, ChatResult
from imagine.mas.config import RoleConfig
from imagine.mas.limits import RateLimiter


class _Retryable(Exception):
    pass


class OpenAICompatBackend:
    def __init__(self, role: RoleConfig, limiter: RateLimiter, rng: random.Random | None = None):
        self.role = role
        self.limiter = limiter
        self.url = role.base_url.rstrip("/") + "/chat/completions"
        self._key = ""
        if role.api_key_env:
            self._key = os.environ.get(role.api_key_env, "")
            if not self._key:
                raise ConfigError(f"environment variable {role.api_key_env} (api_key_env) is not set")
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None

    def redact(self, text: str) -> str:
        if self._key and self._key in text:
            text = text.replace(self._key, "***")
        return text

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=max(self.limiter.concurrency, 1) + 4)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _payload(self, messages: list[dict], sampling: dict) -> dict:
        body: dict[str, Any] = {
            "model": self.role.model, "messages": messages, "temperature": self.role.temperature,
            "top_p": self.role.top_p, "max_tokens": self.role.max_tokens,
        }
        body.update(self.role.extra_body)
        body.update(sampling)
        return body

    async def _attempt(self, body: dict) -> tuple[str, str | None, dict]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        timeout = aiohttp.ClientTimeout(total=self.role.timeout_s, connect=self.role.connect_timeout_s)
        try:
            async with self._session_now().post(self.url, json=body, headers=headers, timeout=timeout) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError as exc:
            raise _Retryable(f"timeout after {self.role.timeout_s:g}s") from exc
        except aiohttp.ClientError as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}") from exc
        snippet = raw[:200].decode("utf-8", "replace")
        if status == 429 or status >= 500:
            err = _Retryable(f"HTTP {status}: {snippet}")
            err.retry_after = retry_after  # type: ignore[attr-defined]
            raise err
        if status != 200:
            raise BackendError(f"HTTP {status} from {self.url}: {snippet}")
        try:
            data = json.loads(raw)
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _Retryable(f"malformed response ({type(exc).__name__}): {snippet!r}") from exc
        usage = data.get("usage") or {}
        usage = {k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens") if isinstance(usage.get(k), int)}
        return text, reasoning, usage

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.role.backoff_max_s, self.role.backoff_s * (2 ** attempt))
        delay *= 0.5 + self._rng.random()  # jitter: many workers must not retry in lockstep
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        return min(delay, self.role.backoff_max_s)

    async def chat(self, messages: list[dict], *, context: ChatContext | None = None, **sampling) -> ChatResult:
        body = self._payload(messages, sampling)
        errors: list[str] = []
        start = time.monotonic()
        for attempt in range(self.role.max_retries + 1):
            retry_after = None
            try:
                async with self.limiter.slot():
                    text, reasoning, usage = await self._attempt(body)
                return ChatResult(text, reasoning, usage, time.monotonic() - start, attempt + 1, errors)
            except _Retryable as exc:
                errors.append(self.redact(str(exc)))
                retry_after = getattr(exc, "retry_after", None)
            except BackendError as exc:
                raise BackendError(self.redact(str(exc))) from None
            if attempt < self.role.max_retries:
                await asyncio.sleep(self._delay(attempt, retry_after))
        raise BackendError(f"{self.role.model}: gave up after {self.role.max_retries + 1} attempts; "
                           f"last error: {errors[-1]}")

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
