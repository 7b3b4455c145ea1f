#!/usr/bin/env bash
# Regenerates the golden frames from a configured build directory:
#   tests/golden/regen.sh [BUILD_DIR]     (default: build)
# Only needed when the frame format version changes; review the diff.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
ninja -C "$build" tests/fuzz/gen_corpus lib/sfp-codec >/dev/null
rm -rf "$here/valid" "$here/invalid"
"$build/tests/fuzz/gen_corpus" golden "$here"
cd "$here/valid"
for f in *.sfp; do
    "$build/lib/sfp-codec" info "$f" >"${f%.sfp}.info"
done
echo "golden frames regenerated in $here"
