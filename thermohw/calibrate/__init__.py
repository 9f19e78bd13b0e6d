"""Hardware-in-the-loop calibration: measure a chip, fit the Langevin computer it really
implements, pre-distort the compiled parameters, and verify (docs/design.md#calibration).

    devices/      Device (program / run / describe), virtual chips built from the backend's own
                  mismatch (IdealVirtualChip; SpiceVirtualChip: the compiled netlist in ngspice),
                  ReplayDevice (recorded files), open_device; RC and LC programs
    recording.py  Recording files and their CSV / NPZ / HDF5 layouts (trajectories.py: the record)
    params.py     ChipParameters: the (possibly non-reciprocal) model a chip implements
    fit.py        maximum-likelihood least squares of the Euler drift, standard errors, CRB
    design.py     calibration protocols (bias steps, pairwise excitation, free runs)
    correct.py    per-element corrections in the target's trim resolution; the loop
    report.py     the workflow behind 'thermohw calibrate' (report.json, plots, corrected/)
    report_record.py  CalibrationReport: the record run_calibration returns (to_dict(): report.json)

Typical use::

    from thermohw.calibrate import IdealVirtualChip, design, fit, calibrate
    chip = IdealVirtualChip(chip_seed=7)                   # or SpiceVirtualChip, ReplayDevice(path)
    chip.program(program)
    rec = chip.run(design.bias_steps(n, 256), duration=20, sample_interval=0.01, seed=1)
    f = fit(rec, mask=program.realised.mask, mobility="bias")   # values, standard errors
    result = calibrate(chip, program, protocol=design.bias_steps(n, 256), duration=20,
                       sample_interval=0.01)               # measure -> correct -> verify
"""
from . import design
from .correct import CalibrationResult, Correction, CorrectionConfig, calibrate, correction_step, estimated_errors, \
    parameter_errors
from .devices import Device, HiddenErrors, IdealVirtualChip, ReplayDevice, open_device, protocol_bias
from .fit import Fit, Statistics, fit, negative_log_likelihood, standardized_residuals
from .params import ChipParameters
from .recording import Recording, read_recording

__all__ = ["Device", "HiddenErrors", "IdealVirtualChip", "ReplayDevice", "open_device", "protocol_bias",
           "Fit", "Statistics", "fit", "negative_log_likelihood", "standardized_residuals", "ChipParameters", "Recording",
           "read_recording", "design", "CalibrationResult", "Correction", "CorrectionConfig", "calibrate",
           "correction_step", "estimated_errors", "parameter_errors"]
