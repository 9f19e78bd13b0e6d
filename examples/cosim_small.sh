#!/usr/bin/env bash
# All the way on a fresh machine, offline: bundled 8x8 digits -> train a 64 + 32-unit computer
# -> compile onto an 8-bit RC chip -> 16 ngspice transient-noise runs beside the ideal models
# -> report folder. About 5 minutes on 2 cores. Usage: examples/cosim_small.sh [OUT]
set -euo pipefail
out="${1:-cosim-small}"
thermohw train -q -o "$out/model" --digits 0,1,7 --hidden 32 --cycles 300 --seed 0
thermohw compile "$out/model/model.npz" --target rc-8bit-dense --bits 8 -o "$out/rc8"
thermohw cosim "$out/rc8" -o "$out/cosim" --runs 16 --workers 2 --ideal-runs 1000
echo "report: $out/cosim/cosim.json and $out/cosim/plots/"
