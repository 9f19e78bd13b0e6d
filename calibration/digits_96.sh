#!/usr/bin/env bash
# Calibrate a badly matched 96-unit digit chip and verify it in ngspice (docs/calibration.md).
#
#   model      bundled 8x8 digits 0/1/7, 64 visible + 32 hidden units, 300 training cycles
#   program    rc-8bit-dense, 8-bit couplings; auto ranges plus a 0.4 bias margin for offset trims
#   chip       chip 0 with 5x the preset's component spreads (10 % OTA gain sd, 5 % R and C,
#              5 mV offsets, 15 % noise-level error), hidden from the calibration
#   calibrate  on the fast ideal-Langevin twin of that chip (same hidden errors): 4096 bias-step
#              runs (amplitude 4, 20 model time units) per measurement, 4 corrections + 1 check
#   generate   8000 samples of each model (ideal Langevin, shared noise seed: paired differences)
#   verify     128 ngspice generation runs each: the mismatched chip as programmed and as
#              corrected (--verify-spice), and the program on a perfect chip
#
# About an hour on 2 cores (calibration 8 min, generation 8 min, each co-simulation 13 min).
# Usage: calibration/digits_96.sh [OUT]
set -euo pipefail
out="${1:-calib96}"
thermohw train -q -o "$out/model" --digits 0,1,7 --hidden 32 --cycles 300 --seed 0
thermohw compile "$out/model/model.npz" --target rc-8bit-dense --bits 8 --bias-margin 0.4 -o "$out/prog"
thermohw calibrate "$out/prog" --device virtual-ideal --chip-seed 0 --mismatch-scale 5 \
    --runs 4096 --amplitude 4 --iterations 4 --generate-runs 8000 --verify-spice 128 --workers 2 -o "$out/cal"
thermohw cosim "$out/prog" -o "$out/cosim-intended" --runs 128 --workers 2
# the SPICE runs share noise seeds: paired differences from the perfect chip
python "$(dirname "$0")/cosim_paired.py" "$out/prog" "$out/cosim-intended" "$out/cal/cosim-before" "$out/cal/cosim-after"
echo "reports: $out/cal/report.json (cosim-before/, cosim-after/ inside), $out/cosim-intended/cosim.json"
