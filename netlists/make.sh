#!/usr/bin/env bash
# Regenerate the netlists in this folder (see README.md). Deterministic: fixed seeds.
#   mnist-chip.cir          the shipped MNIST crossbar model (examples/models/mnist-chip.npz)
#   rc-*.cir                a small model trained here on the bundled 8x8 digits
# Every netlist runs the generation protocol (compile's default); --netlist free gives a free run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# run inside $work with relative paths: each netlist's provenance line records the command,
# and a machine's absolute paths mean nothing to a reader
cp "$here/../examples/models/mnist-chip.npz" "$here/../examples/models/mnist-chip.digits.npz" "$work/"
cd "$work"
# headroom 1: the chip of docs/mnist-chip.md was measured with the bare max|J| full scale (a chip to
# generate with, not to trim; compile's default reserves ~5 % for trims since 2026-12-02)
thermohw compile mnist-chip.npz --target rc-mnist-crossbar --coupling-headroom 1 -o mnist-chip > /dev/null
cp "$work/mnist-chip/chip.cir" "$here/mnist-chip.cir"
cp "$work/mnist-chip/summary.txt" "$here/mnist-chip.summary.txt"
thermohw train -q -o model --digits 0,1,7 --hidden 16 --cycles 200 --seed 0
for t in rc-8bit-dense rc-degree16; do
  thermohw compile model/model.npz --target "$t" -o "$t" > /dev/null
  cp "$work/$t/chip.cir" "$here/$t.cir"
  cp "$work/$t/summary.txt" "$here/$t.summary.txt"
done
thermohw compile model/model.npz --target rc-8bit-dense --bits 4 -o rc4 > /dev/null
cp "$work/rc4/chip.cir" "$here/rc-4bit-dense.cir"
cp "$work/rc4/summary.txt" "$here/rc-4bit-dense.summary.txt"
echo "netlists written to $here"
