"""An OpenAI-compatible chat-completions server with scripted replies and injected faults.

Tests and the throughput benchmark run it on loopback in a subprocess, so the HTTP backend is
exercised over a real socket: latency, 429 with Retry-After, 500 (whose body echoes the
Authorization header, as careless servers do, to prove the key is scrubbed), stalls past the
client's timeout, truncated JSON and non-JSON garbage. The role is read from the model name
(``*reasoner*``, ``*judge*``, ``*reflector*``); a prompt containing ``ALWAYS_FAIL`` always gets a 500.

    python -m imagine.mas.fake_server --port 0 --latency 0.2 --fault-rate 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import sys
from collections import Counter

from aiohttp import web

PLAN = [
    {"days": 1, "current_city": "from A to B", "transportation": "Self-driving, from A to B", "breakfast": "-",
     "attraction": "-", "lunch": "-", "dinner": "Cafe One, B", "accommodation": "Inn One, B"},
    {"days": 2, "current_city": "B", "transportation": "-", "breakfast": "Cafe Two, B", "attraction": "Park, B;",
     "lunch": "Cafe Three, B", "dinner": "Cafe Four, B", "accommodation": "Inn One, B"},
    {"days": 3, "current_city": "from B to A", "transportation": "Self-driving, from B to A",
     "breakfast": "Cafe Five, B", "attraction": "-", "lunch": "-", "dinner": "-", "accommodation": "-"},
]
FAULTS = ("429", "500", "stall", "truncated", "garbage")


def _fence(plan) -> str:
    return "```json\n" + json.dumps(plan) + "\n```"


class FakeOpenAI:
    def __init__(self, latency: float, fault_rate: float, stall_s: float, judge_flag_rate: float, seed: int):
        self.latency, self.fault_rate, self.stall_s = latency, fault_rate, stall_s
        self.judge_flag_rate = judge_flag_rate
        self.rng = random.Random(seed)
        self.stats: Counter = Counter()

    def reply(self, model: str, prompt: str) -> dict:
        digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        message: dict = {"role": "assistant"}
        if "judge" in model:
            message["content"] = "Errors exist." if digest < self.judge_flag_rate else "No errors."
        elif "reflector" in model:
            message["content"] = ("I repeated a restaurant on day 2; I replace it with another one of B.\n\n"
                                  + _fence(PLAN))
        else:
            message["reasoning_content"] = "Step 1: pick the route A -> B -> A. Step 2: meals and a stay in B."
            message["content"] = _fence(PLAN)
        return {"id": "fake", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(message["content"]) // 4}}

    async def completions(self, request: web.Request) -> web.StreamResponse:
        self.stats["requests"] += 1
        body = await request.json()
        prompt = "\n".join(m.get("content", "") for m in body.get("messages", []))
        model = str(body.get("model", ""))
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        auth = request.headers.get("Authorization", "")
        if "ALWAYS_FAIL" in prompt:
            self.stats["always_fail"] += 1
            return web.Response(status=500, text=f"internal error (request had {auth})")
        if self.rng.random() < self.fault_rate:
            fault = self.rng.choice(FAULTS)
            self.stats[fault] += 1
            if fault == "429":
                return web.Response(status=429, text="slow down", headers={"Retry-After": "0"})
            if fault == "500":
                return web.Response(status=500, text=f"upstream failure; headers: Authorization: {auth}")
            if fault == "stall":
                await asyncio.sleep(self.stall_s)
            text = json.dumps(self.reply(model, prompt))
            if fault == "truncated":
                return web.Response(status=200, text=text[: len(text) // 2], content_type="application/json")
            if fault == "garbage":
                return web.Response(status=200, text="<html>Bad Gateway</html>", content_type="application/json")
            return web.Response(status=200, text=text, content_type="application/json")
        self.stats["ok"] += 1
        return web.json_response(self.reply(model, prompt))

    async def not_found(self, request: web.Request) -> web.Response:
        self.stats["not_found"] += 1
        return web.Response(status=404, text=f"no route {request.path}")

    async def stats_handler(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.stats))


async def serve(args: argparse.Namespace) -> None:
    fake = FakeOpenAI(args.latency, args.fault_rate, args.stall_s, args.judge_flag_rate, args.seed)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.completions)
    app.router.add_get("/stats", fake.stats_handler)
    app.router.add_route("*", "/{tail:.*}", fake.not_found)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds before every reply")
    p.add_argument("--fault-rate", dest="fault_rate", type=float, default=0.0)
    p.add_argument("--stall-s", dest="stall_s", type=float, default=5.0, help="how long a stall fault sleeps")
    p.add_argument("--judge-flag-rate", dest="judge_flag_rate", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
