#!/bin/sh
# mpirun -np N sfp-train on synthetic data: every rank must end with
# bit-identical working weights (--check-replicas exits 3 otherwise), and
# the run must match -np 1 closely (same global batch, same data order).
# usage: mpi.sh path/to/sfp-train NP POLICY [extra flags]
set -eu
exe=$1; np=$2; policy=$3; shift 3
command -v mpirun > /dev/null || { echo "mpirun not found"; exit 77; }
tmp=$(mktemp -d /tmp/sfpw-mpi-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
common="--synthetic=2048 --model mlp --policy $policy --batch 64 --epochs 1 --quiet --no-progress --seed 5 --check-replicas $*"
timeout 50 mpirun -np "$np" "$exe" $common > "$tmp/n.txt"
cat "$tmp/n.txt"
grep -q "identical across $np ranks" "$tmp/n.txt"
timeout 50 "$exe" $common > "$tmp/1.txt"
a=$(sed -n 's/^epoch 1\/1.*test \([0-9.]*\)%.*/\1/p' "$tmp/n.txt")
b=$(sed -n 's/^epoch 1\/1.*test \([0-9.]*\)%.*/\1/p' "$tmp/1.txt")
echo "test accuracy: -np $np $a%, -np 1 $b%"
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 50 && d < 5) }'
echo ok
