"""The one seam a new teacher backend implements: ``async chat(messages, **sampling) -> ChatResult``.

Retries, timeouts and rate limits live inside the backend (they depend on the transport); the
pipeline only sees a finished reply or a :class:`BackendError` whose message is safe to record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ChatResult:
    text: str
    reasoning: str | None = None  # separate reasoning channel (e.g. ``reasoning_content``) when the API has one
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens
    latency: float = 0.0  # seconds, all attempts included
    attempts: int = 1
    errors: list[str] = field(default_factory=list)  # why earlier attempts were retried


@dataclass
class ChatContext:
    """What the pipeline knows about a call. Model backends ignore it; the scripted teacher, which has no
    model to read the prompt, uses the structured query and the plan under review instead."""

    role: str
    query_id: str
    query: Any = None
    db: Any = None
    plan: Any = None
    reasoning: str | None = None
    judge_index: int = 0
    seed: int = 0


class BackendError(RuntimeError):
    """A call that could not be completed after its bounded retries; the message never holds secrets."""


class ChatBackend(Protocol):
    async def chat(self, messages: list[dict[str, str]], *, context: ChatContext | None = None,
                   **sampling: Any) -> ChatResult: ...

    async def aclose(self) -> None: ...
