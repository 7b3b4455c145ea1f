#!/usr/bin/env bash
# Validates deploy/k8s/*.yaml against the Kubernetes schemas (npm package
# kubernetes-models, pinned in tests/deploy/k8s/package-lock.json) and the
# MPIJob against the MPI Operator's required fields. Skips (77) when node or
# the npm registry is unavailable.
set -u
src=${SFP_SOURCE_ROOT:?}
work=${SFP_BUILD_ROOT:?}/tests/deploy/k8s-validate
command -v node >/dev/null && command -v npm >/dev/null || { echo "no node/npm: skip"; exit 77; }
mkdir -p "$work"
cp "$src/tests/deploy/k8s/package.json" "$src/tests/deploy/k8s/package-lock.json" \
   "$src/tests/deploy/k8s/validate.mjs" "$work/"
if ! cmp -s "$work/package-lock.json" "$work/node_modules/.sfp-lock" 2>/dev/null; then
    if ! (cd "$work" && timeout 300 npm ci --no-audit --no-fund --silent); then
        echo "npm ci failed (registry unreachable?): skip"
        exit 77
    fi
    cp "$work/package-lock.json" "$work/node_modules/.sfp-lock"
fi
cd "$work" && node validate.mjs "$src"/deploy/k8s/*.yaml
