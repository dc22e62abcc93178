#!/usr/bin/env bash
# `cdk synth` of every model under functions/ with the pinned CLI and the repository's cdk.json, quiet and
# offline (no credentials, no lookups, no Docker), then cfn-lint on every template. Any error fails the run:
# a cdk-nag finding nobody acknowledged, a model directory that does not validate, a cfn-lint error.
#   bash .ci/synth.sh [extra cdk args, e.g. -c mlfn:stage=prod]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash .ci/setup-cdk.sh
export CDK_HOME="$root/.cdk-home"                   # the CLI's own state, inside the project (gitignored)
export CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
mkdir -p "$CDK_HOME"
out=${MLFN_SYNTH_OUT:-cdk.out}
rm -rf "$out"
.ci/node_modules/.bin/cdk synth --no-notices --quiet --output "$out" "$@"
shopt -s nullglob
templates=("$out"/*.template.json)
if [ ${#templates[@]} -eq 0 ]; then
  echo "synth: no templates in $out" >&2
  exit 1
fi
# W3005 (redundant DependsOn) is how CDK writes some dependencies; every other finding fails.
.venv/bin/cfn-lint --ignore-checks W3005 -- "${templates[@]}"
echo "synth: ${#templates[@]} stacks synthesized, cfn-lint clean"
