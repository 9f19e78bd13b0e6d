#!/usr/bin/env bash
# Calibrate a badly matched 96-unit digit chip and verify it in ngspice (docs/calibration.md).
#
#   model      bundled 8x8 digits 0/1/7, 64 visible + 32 hidden units, 300 training cycles
#   program    rc-8bit-dense, 8-bit couplings; auto ranges plus a 0.4 bias margin for offset trims
#   chip       chip 0 with 5x the preset's component spreads (10 % OTA gain sd, 5 % R and C,
#              5 mV offsets, 15 % noise-level error), hidden from the calibration
#   calibrate  on the fast ideal-Langevin twin of that chip (same hidden errors): 4096 bias-step
#              runs (amplitude 4, 20 model time units) per measurement, 4 corrections + 1 check
#   verify     128 ngspice generation runs each: the program on a perfect chip, the mismatched
#              chip as programmed, and the mismatched chip programmed with the correction
#
# About 35 minutes on 2 cores (calibration 8 min, each co-simulation 6 min).
# Usage: calibration/digits_96.sh [OUT]
set -euo pipefail
out="${1:-calib96}"
thermohw train -q -o "$out/model" --digits 0,1,7 --hidden 32 --cycles 300 --seed 0
thermohw compile "$out/model/model.npz" --target rc-8bit-dense --bits 8 --bias-margin 0.4 -o "$out/prog"
thermohw calibrate "$out/prog" --device virtual-ideal --chip-seed 0 --mismatch-scale 5 \
    --runs 4096 --amplitude 4 --iterations 4 -o "$out/cal"
for what in intended before after; do
    case $what in
        intended) chip=() ;;
        before)   chip=(--chip-seed 0 --mismatch-scale 5) ;;
        after)    chip=(--chip-seed 0 --mismatch-scale 5 --programmed "$out/cal/corrected") ;;
    esac
    thermohw cosim "$out/prog" -o "$out/cosim-$what" --runs 128 --workers 2 "${chip[@]}"
done
echo "reports: $out/cal/report.json, $out/cosim-{intended,before,after}/cosim.json"
