"""One query through the teacher: Reasoner -> two Judges in parallel -> Reflector if either flags.

The result is a self-contained trace record: every agent call (prompt hash, raw text, separate
reasoning, token usage, latency, retries), the first and final plans, and the evaluator's verdicts of
both, so the dataset and the report are rebuilt from traces alone, without calling anything again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from imagine.mas.backends.base import BackendError, ChatBackend, ChatContext, ChatResult
from imagine.mas.config import MasConfig, RoleConfig
from imagine.mas.limits import LimiterRegistry
from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.parse import extract_json_plan
from imagine.tasks.travelplanner.schema import Query
from imagine.tasks.travelplanner.student.prompt import planner_prompt, reference_text
from imagine.tasks.travelplanner.student.prompts import fill, load_prompt, text_hash

ERRORS_EXIST = "Errors exist."
NO_ERRORS_VERDICT = "No errors."


class QueryFailed(Exception):
    """The query cannot produce a sample; the message is the recorded reason."""


def build_backend(role_name: str, role: RoleConfig, limiters: LimiterRegistry, scripted_teacher=None) -> ChatBackend:
    if role.backend == "openai":
        from imagine.mas.backends.openai_compat import OpenAICompatBackend

        limiter = limiters.get(role.base_url.rstrip("/"), role.concurrency, role.rpm)
        return OpenAICompatBackend(role, limiter)
    if role.backend == "vllm":
        from imagine.mas.backends.vllm_local import VLLMLocalBackend

        return VLLMLocalBackend(role)
    from imagine.mas.backends.scripted import ScriptedBackend

    return ScriptedBackend(scripted_teacher, role_name)


def split_answer(result: ChatResult) -> tuple[str, str]:
    """(reasoning, answer). APIs with a reasoning channel give it separately; otherwise the reasoning
    is an inline ``<think>`` span or whatever precedes the final JSON block."""
    text = result.text or ""
    if result.reasoning:
        return result.reasoning.strip(), text
    if "</think>" in text:
        head, tail = text.split("</think>", 1)
        return head.replace("<think>", "", 1).strip(), tail
    cut = _plan_start(text)
    return text[:cut].strip(), text[cut:]


def _plan_start(text: str) -> int:
    fence = text.rfind("```json")
    if fence >= 0:
        return fence
    bracket = text.find("[")
    return bracket if bracket >= 0 else len(text)


def parse_plan(answer: str) -> list | None:
    plan, _ = extract_json_plan(answer)
    return plan if isinstance(plan, list) else None


def judge_verdict(text: str) -> tuple[str, bool]:
    """(verdict, understood). Anything that is not clearly "No errors." counts as a flag: a judge that
    cannot answer the format is no evidence that the plan is right."""
    low = text.strip().lower()
    if "errors exist" in low:
        return ERRORS_EXIST, True
    if "no errors" in low:
        return NO_ERRORS_VERDICT, True
    return ERRORS_EXIST, False


def verdict_record(result) -> dict[str, Any]:
    return {"delivered": result.delivered, "commonsense": result.commonsense, "hard": result.hard,
            "final_pass": result.final_pass, "reasons": result.reasons}


class Teacher:
    def __init__(self, cfg: MasConfig, db, limiters: LimiterRegistry | None = None):
        self.cfg, self.db = cfg, db
        self.limiters = limiters or LimiterRegistry()
        scripted = None
        roles = [cfg.reasoner, *cfg.judges, cfg.reflector]
        if any(r.backend == "scripted" for r in roles):
            from imagine.mas.backends.scripted import ScriptedTeacher

            scripted = ScriptedTeacher(db, cfg.scripted, cfg.seed)
        self.reasoner = build_backend("reasoner", cfg.reasoner, self.limiters, scripted)
        self.judges = [build_backend("judge", j, self.limiters, scripted) for j in cfg.judges]
        self.reflector = build_backend("reflector", cfg.reflector, self.limiters, scripted)
        v = cfg.prompt_version
        self.prompts = {
            "reasoner": load_prompt(cfg.reasoner.prompt or "reasoner", v),
            "judges": [load_prompt(j.prompt or "judge", v) for j in cfg.judges],
            "reflector": load_prompt(cfg.reflector.prompt or "reflector", v),
        }
        self.checker = BatchChecker(db)
        self._restaurant_index = None

    async def aclose(self) -> None:
        for backend in (self.reasoner, *self.judges, self.reflector):
            await backend.aclose()

    def reference_text(self, query: Query) -> str:
        return reference_text(query, self.db, self.cfg.reference_style)

    async def _call(self, role_name: str, role: RoleConfig, backend: ChatBackend, prompt: str,
                    ctx: ChatContext, calls: list[dict]) -> ChatResult:
        messages = [{"role": "user", "content": prompt}]
        record: dict[str, Any] = {"role": role_name if role_name != "judge" else f"judge{ctx.judge_index}",
                                  "model": role.model, "prompt_hash": text_hash(prompt)}
        try:
            result = await backend.chat(messages, context=ctx)
        except BackendError as exc:
            record.update(status="failed", error=str(exc))
            calls.append(record)
            raise QueryFailed(f"{record['role']}: {exc}") from None
        record.update(status="ok", text=result.text, reasoning=result.reasoning, usage=result.usage,
                      latency=round(result.latency, 4), attempts=result.attempts, retried=result.errors)
        calls.append(record)
        return result

    async def run(self, qid: str, query: Query, calls: list[dict]) -> dict[str, Any]:
        """Run the teacher on one query; raises :class:`QueryFailed` (``calls`` keeps what happened)."""
        reference = self.reference_text(query)
        prompt = planner_prompt(query, reference, self.prompts["reasoner"])
        base = ChatContext(role="reasoner", query_id=qid, query=query, db=self.db, seed=self.cfg.seed)
        first = await self._call("reasoner", self.cfg.reasoner, self.reasoner, prompt, base, calls)
        reasoning, answer = split_answer(first)
        first_plan = parse_plan(answer)
        plan_text = json.dumps(first_plan, ensure_ascii=False) if first_plan is not None else answer.strip()

        judge_calls = []
        for i, (role, backend) in enumerate(zip(self.cfg.judges, self.judges)):
            judge_prompt = fill(self.prompts["judges"][i], query=query.query, reference=reference,
                                reasoning=reasoning, plan=plan_text)
            ctx = ChatContext(role="judge", query_id=qid, query=query, db=self.db, plan=first_plan,
                              reasoning=reasoning, judge_index=i, seed=self.cfg.seed)
            judge_calls.append(self._call("judge", role, backend, judge_prompt, ctx, calls))
        judged = await asyncio.gather(*judge_calls, return_exceptions=True)
        for outcome in judged:
            if isinstance(outcome, BaseException):
                raise outcome
        verdicts = [judge_verdict(r.text) for r in judged]

        reflection = None
        final_plan = first_plan
        if any(v == ERRORS_EXIST for v, _ in verdicts):
            reflect_prompt = fill(self.prompts["reflector"], query=query.query, reference=reference,
                                  reasoning=reasoning, plan=plan_text)
            ctx = ChatContext(role="reflector", query_id=qid, query=query, db=self.db, plan=first_plan,
                              reasoning=reasoning, seed=self.cfg.seed)
            reply = await self._call("reflector", self.cfg.reflector, self.reflector, reflect_prompt, ctx, calls)
            text = reply.text or ""
            final_plan = parse_plan(text[_plan_start(text):]) if text else None
            if final_plan is None:
                raise QueryFailed("reflector: the reply has no JSON plan")
            reflection = text[:_plan_start(text)].strip()
            if not reflection:
                raise QueryFailed("reflector: the reply has a plan but no reflection text")

        first_eval, final_eval = self.checker.check([(query, first_plan), (query, final_plan)])
        return {
            "prompt": prompt, "reasoning": reasoning, "first_plan": first_plan,
            "judges": [v for v, _ in verdicts], "judges_understood": [ok for _, ok in verdicts],
            "reflected": reflection is not None, "reflection": reflection, "final_plan": final_plan,
            "eval": {"first": verdict_record(first_eval), "final": verdict_record(final_eval)},
        }
