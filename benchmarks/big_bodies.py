"""The gateway's memory when many large requests arrive at once and their clients do not
read the answers: 64 clients each send a 7.3 MiB chat request over a raw socket, then
hold the connection without reading; the gateway's RSS is sampled while they hold, and
after they hang up.

    python benchmarks/big_bodies.py [--clients 64] [--mib 7.3] [--bursts 3]

Runs a gateway in front of ``tests/stub_engine.py``; starts and stops both. Run from the
repository's root.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from ponder.server.engines.managed import ManagedEngine, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.load import rss_mib


def request_bytes(host: str, port: int, mib: float) -> bytes:
    words = int(mib * 2**20 / 5)
    body = json.dumps(
        {
            "model": "stub",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "word " * words}],
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--mib", type=float, default=7.3)
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the clients hold")
    parser.add_argument("--bursts", type=int, default=3)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="ponder-bodies-"))
    engine_port, port = free_port(), free_port()
    engine = ManagedEngine(
        "stub",
        [sys.executable, "-m", "tests.stub_engine", "--port", str(engine_port)],
        port=engine_port,
        log_file=logs / "engine.log",
    )
    argv = [sys.executable, "-m", "ponder.server", "serve", "--port", str(port)]
    argv += ["--engine-url", engine.url + "/v1", "--no-cache", "--log-level", "warning"]
    gateway = ManagedEngine("ponder", argv, port=port, ready_path="/ready", log_file=logs / "g")
    payload = request_bytes("127.0.0.1", port, args.mib)
    with engine, gateway:
        assert gateway.process is not None
        pid = gateway.process.pid
        before = rss_mib(pid)
        print(
            f"{args.clients} clients, {len(payload) / 2**20:.1f} MiB each, not reading for "
            f"{args.hold:.0f} s, {args.bursts} bursts; gateway RSS {before:.0f} MiB before"
        )
        for burst in range(1, args.bursts + 1):
            peak, holding, statuses = one_burst(args, port, payload, pid)
            time.sleep(5)
            after = rss_mib(pid)
            print(
                f"burst {burst}: RSS {peak:.0f} MiB at most, {holding:.0f} MiB while they "
                f"held, {after:.0f} MiB 5 s after they left; statuses "
                + ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
            )
    return 0


def one_burst(
    args: argparse.Namespace, port: int, payload: bytes, pid: int
) -> tuple[float, float, Counter[str]]:
    sockets: list[socket.socket] = []
    lock = threading.Lock()

    def send() -> None:
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(payload)
        with lock:
            sockets.append(connection)

    senders = [threading.Thread(target=send) for _ in range(args.clients)]
    for sender in senders:
        sender.start()
    peak = rss_mib(pid)
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        peak = max(peak, rss_mib(pid))
        time.sleep(0.1)
    for sender in senders:
        sender.join()
    holding = rss_mib(pid)
    statuses: Counter[str] = Counter()
    for connection in sockets:
        connection.settimeout(30)
        head = connection.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
        statuses[head.split(" ")[1] if " " in head else "none"] += 1
        connection.close()
    return peak, holding, statuses


if __name__ == "__main__":
    sys.exit(main())
