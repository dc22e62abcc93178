#!/usr/bin/env bash
# Install the pinned AWS CDK CLI (.ci/package.json, locked by .ci/package-lock.json) under .ci/node_modules.
# Idempotent: when the pinned version is already there it only checks and exits.
set -euo pipefail
cd "$(dirname "$0")"
want=$(node -p "require('./package.json').devDependencies['aws-cdk']")
have=$(node -p "try { require('./node_modules/aws-cdk/package.json').version } catch (e) { '' }")
if [ "$have" = "$want" ] && [ -x node_modules/.bin/cdk ]; then
  exit 0
fi
echo "installing aws-cdk $want (npm ci) ..."
npm ci --no-audit --no-fund --loglevel=error
