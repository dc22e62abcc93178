#!/usr/bin/env bash
# Smoke run of the benchmark (bench/compare): seconds long, installs nothing, asserts no timing.
# Runs mlfn's server and Lambda handler and bare onnxruntime on the MLP (plain FastAPI too if its venv exists).
# Uses Debian's wrk when installed (apt-get install -y wrk), else the harness's built-in keep-alive client.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$PY" -m bench.compare --smoke --out "$out" --cache "${MLFN_BENCH_CACHE:-.mlfn/bench/models}"
