"""thermohw: map generative Langevin computers onto analog thermodynamic hardware.

Public API (stable names; everything else is internal):
"""
from ._version import __version__
from .computer import Computer, connectivity_mask
from .errors import DivergenceError, InputError, ThermohwError
from .langevin import Protocol, Trajectory, generate, noising, simulate
from .target import Target, list_presets
from .chipspec import ChipSpec
from .compile import CompiledProgram, CompileOptions, compile_computer


__all__ = [
    "Computer", "connectivity_mask", "Protocol", "Trajectory", "simulate", "generate", "noising",
    "Target", "list_presets", "ChipSpec", "CompiledProgram", "CompileOptions", "compile_computer",
    "ThermohwError", "InputError", "DivergenceError", "__version__",
]
