#!/usr/bin/env bash
# Install the tools the packaging tests use: a real OCI registry (docker-registry), skopeo and umoci to read
# images back, and buildah + debootstrap to build a runtime base image without a Docker engine.
# Idempotent: packages already at the pinned version are left alone. Pins are Debian 12 (bookworm) versions;
# when a pin is no longer in the archive the script falls back to the candidate version and says so.
set -euo pipefail

PINS=(
  "docker-registry=2.8.2+ds1-1"
  "skopeo=1.9.3+ds1-1+b10"
  "umoci=0.4.7+ds-3+b7"
  "buildah=1.28.2+ds1-3+deb12u1+b3"
  "debootstrap=1.0.128+nmu2+deb12u2"
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for pin in "${PINS[@]}"; do
  name="${pin%%=*}"; want="${pin#*=}"
  have="$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)"
  if [ "$have" != "install ok installed $want" ]; then missing+=("$pin"); fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-images: all tools present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  echo "setup-images: pinned versions unavailable, installing the archive's current ones" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]%%=*}"
fi
# The Debian package starts a registry service on :5000 where an init system runs; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $SUDO systemctl stop docker-registry || true
fi
echo "setup-images: installed ${missing[*]}"
