"""Run ``ponder serve`` with a clock on its garbage collector: every half second, the
seconds collection took so far and the collections by generation are written to a file.

    python -m benchmarks.collector_clock FILE serve --port 8000 ...

``benchmarks/gateway_cost.py --collector`` starts the gateway this way and reads the file
before and after each run, for the collector's share of a request's CPU.
"""

from __future__ import annotations

import gc
import json
import runpy
import sys
import threading
import time
from pathlib import Path


class CollectorClock:
    """The time the garbage collector takes, and its collections by generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def read(path: Path) -> tuple[float, list[int]]:
    """The seconds and collections written last (zero before the first write)."""
    try:
        written = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0.0, [0, 0, 0]
    return float(written["seconds"]), list(written["collections"])


def main() -> None:
    path = Path(sys.argv[1])
    clock = CollectorClock()
    gc.callbacks.append(clock)

    def write() -> None:
        while True:
            time.sleep(0.5)
            state = {"seconds": clock.seconds, "collections": clock.collections}
            partial = path.with_suffix(".partial")
            partial.write_text(json.dumps(state))
            partial.replace(path)

    threading.Thread(target=write, daemon=True).start()
    sys.argv = ["ponder", *sys.argv[2:]]
    runpy.run_module("ponder.server", run_name="__main__")


if __name__ == "__main__":
    main()
