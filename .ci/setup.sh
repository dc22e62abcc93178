#!/usr/bin/env bash
# Create .venv and install mlfn with its pinned dependencies (and, with --dev, the test tools).
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mlfn needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24" "setuptools>=77" wheel
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
if [ "${1:-}" = "--dev" ] && [ ! -x .venv-awscli/bin/aws ]; then
  # the AWS CLI that tests drive the emulator with, in a venv of its own: awscli pins its own botocore
  "$python" -m venv .venv-awscli
  .venv-awscli/bin/python -m pip install -q --disable-pip-version-check "awscli==1.46.3"
fi
