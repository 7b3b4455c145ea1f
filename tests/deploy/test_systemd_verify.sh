#!/usr/bin/env bash
# systemd-analyze verify on the installed unit (as meson configured it),
# with sfpd on PATH from the build tree. Skips (77) without systemd-analyze.
set -u
unit=${1:?unit file}
sfpd=${2:?sfpd binary}
command -v systemd-analyze >/dev/null || { echo "no systemd-analyze: skip"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Point ExecStart at the built binary: verify checks that it exists.
sed "s|^ExecStart=[^ ]*|ExecStart=$sfpd|" "$unit" > "$tmp/sfpd.service"
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$tmp/sfpd.service" 2>&1)
rc=$?
# Outside a booted systemd (containers, CI) verify may complain about the
# missing manager; only messages about our unit count.
ours=$(printf '%s\n' "$out" | grep -F "sfpd.service" | grep -v "Failed to connect" || true)
if [[ $rc -ne 0 && -n "$ours" ]]; then
    printf '%s\n' "$out"
    echo "FAIL: systemd-analyze verify"
    exit 1
fi
if [[ -n "$ours" ]]; then
    printf '%s\n' "$out"
    echo "FAIL: warnings about sfpd.service"
    exit 1
fi
echo "systemd-analyze verify: sfpd.service OK${out:+ (other output: $out)}"
