#!/usr/bin/env bash
# docs/OPERATIONS.md lists exactly sfpd's options (generated table is fresh).
set -u
exec /usr/bin/python3 "${SFP_SOURCE_ROOT:?}/scripts/gen-options-doc" "${1:?sfpd}" --check
