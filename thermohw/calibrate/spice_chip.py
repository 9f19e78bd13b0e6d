"""Kept for imports written before the devices were split: the SPICE virtual chip lives in
``calibrate/devices/spice.py``."""
from .devices.spice import SpiceVirtualChip, chip_under_test, copies_circuit  # noqa: F401

__all__ = ["SpiceVirtualChip", "copies_circuit", "chip_under_test"]
