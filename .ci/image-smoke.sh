#!/usr/bin/env bash
# The slow packaging tier: build the runtime base offline (debootstrap, no Docker), add a model layer, unpack the
# image with umoci and start its entrypoint in a chroot (both flavours); each must answer a prediction.
# Needs root and the tools from .ci/setup-images.sh. Cold: about 5 to 8 minutes on 2 cores (debootstrap ~60 s,
# then per flavour pip ~50 s and layer compression ~40 s); with MLFN_SMOKE_HOME kept between runs, about 2.5 minutes.
# Run it at least once per change to runtime_layer/ or cli/packaging/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup-images.sh
exec .venv/bin/pytest -q -m slow tests/packaging/test_image_runs.py "$@"
