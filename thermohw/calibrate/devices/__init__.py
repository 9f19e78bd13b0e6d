"""Devices a calibration talks to: program a compiled program, record trajectories.

    base.py     Device (program / run / describe / discretisation / truth), protocol_bias
    virtual.py  IdealVirtualChip: the ideal model of the circuit with the backend's hidden
                mismatch (RC: HiddenErrors; LC: backends.lc.Mismatch)
    spice.py    SpiceVirtualChip: the compiled netlist with the same mismatch, in ngspice
    replay.py   ReplayDevice: recorded traces from files (a lab's captures)

:func:`open_device` (the CLI's ``--device``) builds one by name.
"""
from __future__ import annotations

from typing import Any

from ...errors import InputError
from .base import Device, protocol_bias
from .replay import ReplayDevice
from .spice import SpiceVirtualChip, chip_under_test, copies_circuit
from .virtual import (HiddenErrors, IdealVirtualChip, VirtualChip, calibration_backend, chip_truth, draw_errors,
                      simulate_chip)

__all__ = ["Device", "HiddenErrors", "IdealVirtualChip", "ReplayDevice", "SpiceVirtualChip", "VirtualChip",
           "open_device", "protocol_bias", "calibration_backend", "chip_truth", "draw_errors", "simulate_chip",
           "chip_under_test", "copies_circuit"]


def open_device(spec: str, **kw: Any) -> Device:
    """``virtual-ideal``, ``virtual-spice`` or ``replay:PATH`` (the CLI's --device)."""
    if spec == "virtual-ideal":
        return IdealVirtualChip(**kw)
    if spec == "virtual-spice":
        return SpiceVirtualChip(**kw)
    if spec.startswith("replay:"):
        path = spec.split(":", 1)[1]
        if not path.strip(" ,"):  # an empty path would silently read the current folder
            raise InputError(f"--device {spec!r} names no recordings; use replay:PATH with a .csv/.npz "
                             "file or a folder of them (replay:. for the current folder)")
        return ReplayDevice(path)
    raise InputError(f"unknown device {spec!r}; use virtual-ideal, virtual-spice or replay:PATH")
