"""SPICE support: netlist text helpers and the ngspice engines."""
from .netlist import eng, sanitize_comment, sanitize_name
from .ngspice import NgspiceError, find_ngspice, read_raw, run_batch

__all__ = ["eng", "sanitize_comment", "sanitize_name", "NgspiceError", "find_ngspice", "read_raw", "run_batch"]
