"""What an engine makes per second in the shapes of calls the strategies send: eight short
prompts decoded together (drafts, votes), eight and four long prompts (PDR's summaries and
refinements reading drafts), and one short stream alone. Every call has its own prompt,
asks the engine not to reuse a cached one, and runs to ``max_tokens`` (``ignore_eos``:
llama.cpp's server), so that every setting sees the same work.

    python -m ponder.server.engines.llamacpp_main --model GGUF --port 8001 &
    python benchmarks/engine_throughput.py --url http://127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

DATASET = Path(__file__).parents[1].parent / "shared" / "datasets" / "svamp.jsonl"


@dataclass(frozen=True)
class Phase:
    name: str
    calls: int
    words: int
    max_tokens: int


PHASES = (
    Phase("8 short prompts together", 8, 60, 96),
    Phase("8 long prompts together", 8, 350, 48),
    Phase("4 long prompts together", 4, 350, 48),
    Phase("1 short prompt alone", 1, 60, 64),
)


def texts(path: Path) -> list[str]:
    """Words to build prompts from: the dataset's records, in order."""
    lines = path.read_text().splitlines()
    return " ".join(str(json.loads(line)) for line in lines).split()


async def call(
    client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int
) -> tuple[int, int]:
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "seed": 0,
        "ignore_eos": True,
        "cache_prompt": False,
    }
    response = await client.post(url + "/v1/chat/completions", json=body)
    response.raise_for_status()
    usage = response.json()["usage"]
    return int(usage["prompt_tokens"]), int(usage["completion_tokens"])


async def main(url: str, dataset: Path) -> None:
    words = texts(dataset)
    start = 0
    totals = [0, 0, 0.0]
    async with httpx.AsyncClient(timeout=3600) as client:
        await call(client, url, "hi", 4)  # loaded and warm
        for phase in PHASES:
            prompts = []
            for _ in range(phase.calls):  # each call its own text: no prompt is cached
                prompts.append(" ".join(words[start : start + phase.words]))
                start += phase.words
            began = time.perf_counter()
            asked = (call(client, url, p, phase.max_tokens) for p in prompts)
            usages = await asyncio.gather(*asked)
            seconds = time.perf_counter() - began
            prompt_tokens = sum(p for p, _ in usages)
            made = sum(c for _, c in usages)
            print(
                f"{phase.name:26s} prompt {prompt_tokens:6,d}  generated {made:5,d}  "
                f"{seconds:6.1f} s  generated/s {made / seconds:5.1f}  "
                f"all/s {(prompt_tokens + made) / seconds:5.1f}",
                flush=True,
            )
            totals = [totals[0] + prompt_tokens, totals[1] + made, totals[2] + seconds]
    prompt_tokens, made, seconds = int(totals[0]), int(totals[1]), totals[2]
    print(
        f"{'all phases':26s} prompt {prompt_tokens:6,d}  generated {made:5,d}  {seconds:6.1f} s  "
        f"all/s {(prompt_tokens + made) / seconds:5.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="an OpenAI-compatible engine")
    parser.add_argument("--dataset", type=Path, default=DATASET, help="JSONL to make prompts of")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.url, arguments.dataset))
