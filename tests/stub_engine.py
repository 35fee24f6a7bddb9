"""An OpenAI-compatible engine that generates nothing: it streams ``max_tokens`` words at a
fixed pace. The load test and ``benchmarks/load.py`` run it as a real process behind a real
gateway, so that what they measure is the gateway, not a model.

    python -m tests.stub_engine --port 8001 --token-interval 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "stub"


def create_app(token_interval: float) -> Starlette:
    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "owned_by": "vllm"}]})

    async def tokenize(request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"count": len(str(body.get("prompt", "")).split())})

    async def chat(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        tokens = int(body.get("max_tokens") or 16)
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": prompt_tokens + tokens,
        }
        if not body.get("stream"):
            await asyncio.sleep(token_interval * tokens)
            return JSONResponse(
                {
                    "id": "stub",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": words(tokens)},
                            "finish_reason": "length",
                        }
                    ],
                    "usage": usage,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            for i in range(tokens):
                await asyncio.sleep(token_interval)
                yield word_chunk(i)
            yield chunk({"index": 0, "delta": {}, "finish_reason": "length"})
            yield b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/tokenize", tokenize, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


def words(count: int) -> str:
    return "".join(f"w{i} " for i in range(count))


@functools.cache
def word_chunk(i: int) -> bytes:
    # Made once: the stub must cost far less than the gateway it feeds.
    return chunk({"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None})


def chunk(choice: dict[str, Any]) -> bytes:
    payload = {"id": "stub", "object": "chat.completion.chunk", "model": MODEL, "choices": [choice]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-interval", type=float, default=0.02, help="seconds per token")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.token_interval),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        backlog=4096,
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
