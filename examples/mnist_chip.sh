#!/usr/bin/env bash
# The MNIST crossbar chip end to end (docs/mnist-chip.md): chip-aware training of the shipped
# model examples/models/mnist-chip.npz, compile to the rc-mnist-crossbar netlist, 1000 samples
# of the realised model, the netlist in plain ngspice, and 16 co-simulated SPICE runs.
#   usage: examples/mnist_chip.sh MNIST_IMAGES_IDX [OUT]      (e.g. data/mnist/t10k-images-idx3-ubyte.gz)
# Training is resumable: rerun the same command after an interruption. Times on 2 cores:
# training ~20 min, sampling ~2 min, one ngspice run ~2 min, co-simulation ~25 min.
set -euo pipefail
images="${1:?usage: examples/mnist_chip.sh MNIST_IMAGES_IDX [OUT]}"
out="${2:-mnist-chip}"
train=(--mnist "$images" --digits 0,3,7 --hidden 24 --target rc-mnist-crossbar
       --hidden-targets classes --hidden-amplitude 10 --batch 4 --cycles 1500 --average-from 500)
if [ -f "$out/train/checkpoint.npz" ] && [ ! -f "$out/train/model.npz" ]; then
  thermohw train -o "$out/train" --resume --cycles 1500
elif [ ! -f "$out/train/model.npz" ]; then
  thermohw train "${train[@]}" -o "$out/train"
fi
thermohw compile "$out/train/model.npz" --target rc-mnist-crossbar --coupling-headroom 1 -o "$out/chip"
thermohw sample "$out/chip/realised.npz" --runs 1000 --seed 1 -o "$out/samples" --reference "$images"
( cd "$out/chip" && time ngspice -b -r out.raw chip.cir > ngspice.log )
thermohw readout "$out/chip" "$out/chip/out.raw" -o "$out/readout" --reference "$images"
thermohw cosim "$out/chip" --runs 16 --workers 2 --ideal-runs 1000 --nt-fraction 0.05 -o "$out/cosim"
echo "model: $out/train/model.npz; netlist: $out/chip/chip.cir; reports: $out/samples, $out/cosim"
