#!/usr/bin/env bash
# meson install --destdir into a temp dir puts every listed file in place,
# and a program built against the installed sfp.pc encodes and decodes.
set -u
build=${SFP_BUILD_ROOT:?}
dest=$(mktemp -d /tmp/sfp-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
if ! meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1; then
    cat "$dest.log"; rm -f "$dest.log"
    echo "FAIL: meson install"
    exit 1
fi
rm -f "$dest.log"
opt() {
    meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
        'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"
}
prefix=$(opt prefix)
# a sanitizer build installs an instrumented libsfp: link the user the same way
san=$(opt b_sanitize)
sanflags=()
[[ "$san" != none ]] && sanflags=(-fsanitize="$san")
fail=0
want=(bin/sfp-codec include/sfp/sfp.h lib/systemd/system/sfpd.service lib/sysusers.d/sfpd.conf
      lib/tmpfiles.d/sfpd.conf share/doc/sfp/FORMAT.md share/doc/sfp/help/sfp-codec.txt)
[[ -e "$build/daemon/sfpd" ]] && want+=(sbin/sfpd share/doc/sfp/help/sfpd.txt share/doc/sfp/OPERATIONS.md)
[[ -e "$build/client/sfpctl" ]] && want+=(bin/sfpctl include/sfp/client.h share/doc/sfp/help/sfpctl.txt)
[[ -e "$build/worker/sfp-train" ]] && want+=(bin/sfp-train share/doc/sfp/help/sfp-train.txt)
for f in "${want[@]}"; do
    if [[ ! -e "$dest$prefix/$f" ]]; then
        echo "FAIL: $prefix/$f not installed"
        fail=1
    fi
done
if [[ -e "$build/daemon/sfpd" ]]; then
    conf=$(find "$dest" -path '*/sfpd/sfpd.conf' | head -1)
    [[ -n "$conf" ]] && grep -q '^dram_budget' "$conf" || { echo "FAIL: sample sfpd.conf"; fail=1; }
fi
pc=$(find "$dest" -name sfp.pc | head -1)
if [[ -z "$pc" ]]; then
    echo "FAIL: sfp.pc not installed"
    exit 1
fi
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$dest
cat > "$dest/use.c" <<'C'
#include <sfp/sfp.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    float x[256], y[256];
    unsigned char f[4096];
    size_t len, n;
    sfp_params p;
    for (int i = 0; i < 256; i++)
        x[i] = (i % 3) ? (float)i / 8.0f : 0.0f;
    sfp_params_default(&p);
    p.coder = SFP_CODER_GECKO;
    if (sfp_encode(x, 256, &p, f, sizeof(f), &len, NULL) || sfp_decode(f, len, y, sizeof(y), &n))
        return 1;
    printf("sfp %s: 256 values -> %zu bytes, round trip %s\n", sfp_version(), len,
           memcmp(x, y, sizeof(x)) ? "DIFFERS" : "exact");
    return memcmp(x, y, sizeof(x)) != 0;
}
C
if ! cc "${sanflags[@]}" -o "$dest/use" "$dest/use.c" $(pkg-config --cflags --libs sfp) 2>"$dest/cc.log"; then
    cat "$dest/cc.log"
    echo "FAIL: cannot build against the installed sfp.pc"
    exit 1
fi
libdir=$(pkg-config --variable=libdir sfp) # already under the sysroot
LD_LIBRARY_PATH=$libdir "$dest/use" || { echo "FAIL: installed libsfp round trip"; fail=1; }
# the Python package: where Debian's /usr/bin/python3 looks, and importable
if compgen -G "$build/python/sfp/_sfp*.so" >/dev/null; then
    init=$(find "$dest" -path '*/sfp/__init__.py' | head -1)
    pydir=$(dirname "$(dirname "$init")")
    if [[ -z "$init" || ! -e "$pydir/sfp/torch.py" ]] || ! compgen -G "$pydir/sfp/_sfp*.so" >/dev/null; then
        echo "FAIL: the Python package sfp is not installed"
        fail=1
    else
        site=${pydir#"$dest"}
        if [[ "$prefix" == /usr/local || "$prefix" == /usr ]] &&
            ! /usr/bin/python3 -c 'import sys; sys.exit(sys.argv[1] not in sys.path)' "$site"; then
            echo "FAIL: $site is not on /usr/bin/python3's sys.path"
            fail=1
        fi
        if [[ "$san" == none ]]; then
            PYTHONPATH=$pydir LD_LIBRARY_PATH=$libdir /usr/bin/python3 -c '
import array, sfp
x = array.array("f", [i / 8 for i in range(256)])
assert sfp.decode(sfp.encode(x, coder="rans")).tobytes() == x.tobytes()
print("python: sfp %s from %s" % (sfp.__version__, sfp.__file__))' ||
                { echo "FAIL: the installed Python package"; fail=1; }
        fi
    fi
fi
[[ $fail == 0 ]] && echo "install: all files in place, sfp.pc usable"
exit $fail
