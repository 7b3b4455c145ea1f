#!/usr/bin/env bash
# Regenerates the golden frames from a configured build directory:
#   tests/golden/regen.sh [BUILD_DIR]     (default: build)
# Only needed when the frame format version changes; review the diff.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
ninja -C "$build" tests/fuzz/gen_corpus lib/sfp-codec >/dev/null
# frames of an older encoder that must keep decoding as they are (the
# Huffman zero map in one stream, before ZH2): kept, not rewritten
keep=$(mktemp -d)
trap 'rm -rf "$keep"' EXIT
cp "$here"/valid/*_zhuf.* "$keep"/
rm -rf "$here/valid" "$here/invalid"
"$build/tests/fuzz/gen_corpus" golden "$here"
cp "$keep"/* "$here/valid/"
cd "$here/valid"
for f in *.sfp; do
    "$build/lib/sfp-codec" info "$f" >"${f%.sfp}.info"
done
echo "golden frames regenerated in $here"
