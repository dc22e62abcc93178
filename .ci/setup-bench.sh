#!/usr/bin/env bash
# Debian's wrk, the load generator of bench/compare (optional: without it the harness uses its own client).
# Idempotent; run as root. The full benchmark installs its Python alternatives itself (.mlfn/bench/venvs).
set -euo pipefail
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq "wrk=4.1.0-3+b2" >/dev/null || apt-get install -y -qq wrk >/dev/null
fi
wrk --version 2>&1 | head -1 || true
