"""Entry point of the embedded llama.cpp engine process (xllamacpp's native server).

Started by :mod:`ponder.server.engines.managed` as its own process, so that a
crash or a hang in native code never takes the gateway down with it.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="path of a GGUF file")
    parser.add_argument("--alias", default="smollm2-135m", help="model name the engine serves")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=8, help="slots decoded together")
    parser.add_argument("--ctx-per-slot", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--chat-template-file", help="a Jinja chat template instead of the GGUF's own"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import xllamacpp

    args = parse_args(argv)
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.parallel * args.ctx_per_slot
    params.cont_batching = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.endpoint_metrics = True
    if args.chat_template_file:
        with open(args.chat_template_file, encoding="utf-8") as template:
            params.chat_template = template.read()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xllamacpp.Server(params)  # serves HTTP on its own threads
    print(f"llama.cpp engine listening on {server.listening_address}", flush=True)
    stop.wait()


if __name__ == "__main__":
    main()
