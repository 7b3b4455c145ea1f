#!/bin/sh
# Real data: 2 epochs of the mlp under qmqe+gecko must reach 84% test
# accuracy and a footprint ratio of at least 4x. Skipped without the data.
# usage: fashion.sh path/to/sfp-train
set -eu
exe=$1
dir=${SFP_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
[ -r "$dir/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $dir"; exit 77; }
out=$("$exe" --data "$dir" --model mlp --policy qmqe --gecko --epochs 2 --quiet --no-progress)
echo "$out"
echo "$out" | awk '/^epoch 2\/2/ { for (i = 1; i <= NF; i++) { if ($i == "test") acc = $(i+1); if ($i == "footprint") fp = $(i+1) } }
  END { sub("%", "", acc); sub("x", "", fp); if (acc + 0 < 84 || fp + 0 < 4) { print "FAIL acc " acc " footprint " fp; exit 1 } print "ok" }'
