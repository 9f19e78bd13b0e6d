"""Kept for imports written before the devices were split (``calibrate/devices/``): the same
names, from where they now live."""
from .devices import (Device, HiddenErrors, IdealVirtualChip, ReplayDevice, VirtualChip,  # noqa: F401
                      calibration_backend, chip_truth, draw_errors, open_device, protocol_bias, simulate_chip)
from .devices.base import samples as _samples  # noqa: F401

__all__ = ["Device", "HiddenErrors", "IdealVirtualChip", "ReplayDevice", "protocol_bias", "open_device",
           "draw_errors", "calibration_backend", "chip_truth"]
