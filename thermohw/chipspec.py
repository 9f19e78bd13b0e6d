"""How a model sits on a chip: the records chip-aware training, the trainer's checkpoint and
compile share, below all of them (they import this module, never each other).

    QuantSpec   the target's programmable precision (codes, ranges, the J2 trim), applied as
                compile's ``scale`` + ``quantise`` passes apply it (:mod:`thermohw.quantise`)
    ChipSpec    one chip-aware training setting: the target (its graph, ranges and bits), the
                placement of the model's logical units on its physical units, and the
                precision / mismatch settings; JSON in the training checkpoint

The placement a training run chose also travels with the trained model as the typed field
``Computer.placement``, which compile's ``place`` pass starts from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import quantise
from .computer import Computer, checked_placement
from .errors import InputError
from .target import Quant, Target, Trim

__all__ = ["QuantSpec", "ChipSpec"]


@dataclass(frozen=True)
class QuantSpec:
    """The target's programmable precision, applied as compile applies it.

    couplings, biases : signed codes over the target's *largest* range (model units); the
        full scale actually used is chosen per model as compile's ``scale`` pass does:
        ``range = "auto"``: the smallest symmetric range holding the values, capped by the
        target's; ``"full"``: the target's range (fixed).
    trim : the unsigned J2 trim grid (model units), or None when the target has no trim.
    gain_sd / coupling_headroom : the coupling headroom compile leaves for trims
        (``quantise.headroom_for``: ``coupling_headroom`` if given, else the rule for couplings
        with relative gain errors of sd ``gain_sd``, the target's ``components.gain_mismatch``).
    Rounding is always to nearest (stochastic rounding would make the forward model random).
    """

    couplings: Quant
    biases: Quant
    trim: Trim | None = None
    range: str = "auto"
    gain_sd: float = 0.0
    coupling_headroom: float | None = None

    def __post_init__(self) -> None:
        quantise.check_range(self.range)
        for name in ("couplings", "biases"):
            if not isinstance(getattr(self, name), Quant):
                raise InputError(f"{name} must be a Quant")
        if self.trim is not None and not isinstance(self.trim, Trim):
            raise InputError("trim must be a Trim or None")

    @classmethod
    def from_target(cls, target: Target, *, bits: int | None = None, bias_bits: int | None = None,
                    range: str = "auto") -> "QuantSpec":
        """The target's codes, with optional coupling / bias bit-width overrides (2..16)."""
        quantise.check_bits(bits, "bits")
        quantise.check_bits(bias_bits, "bias_bits")
        return cls(couplings=quantise.with_settings(target.couplings, bits, "nearest", None),
                   biases=quantise.with_settings(target.biases, bias_bits, "nearest", None),
                   trim=target.diagonal, range=range,
                   gain_sd=target.components.gain_mismatch if target.components is not None else 0.0)

    def ranges(self, c: Computer) -> tuple[tuple[float, float], tuple[float, float]]:
        """The (coupling, bias) ranges compile's ``scale`` pass would choose for ``c``."""
        h = quantise.headroom_for(c, self.couplings, self.gain_sd, self.range, self.coupling_headroom)
        return quantise.ranges(self.couplings, self.biases, c, self.range, h)[:2]

    def quantizers(self, c: Computer) -> tuple[Quant, Quant]:
        rj, rb = self.ranges(c)
        return quantise.with_settings(self.couplings, None, None, rj), quantise.with_settings(self.biases, None, None, rb)

    def quantize(self, c: Computer) -> Computer:
        """The model the target's codes realise for ``c`` (same arithmetic as compile's
        ``scale`` + ``quantise``, so compiling the result again changes nothing)."""
        qj, qb = self.quantizers(c)
        codes_j, codes_b = quantise.codes(c, qj, qb)
        J, b = qj.decode(codes_j), qb.decode(codes_b)
        J2 = c.J2 if self.trim is None else self.trim.quantize(c.J2)
        return c.replace(J=J, b=b, J2=J2)

    def clip(self, c: Computer) -> Computer:
        """``c`` with couplings and biases clipped to the target's largest range: keeps the
        straight-through shadow from drifting where no code can follow it."""
        q, qb = self.couplings, self.biases
        J, b = np.where(c.mask, np.clip(c.J, q.min, q.max), 0.0), np.clip(c.b, qb.min, qb.max)
        if np.array_equal(J, c.J) and np.array_equal(b, c.b):
            return c
        return c.replace(J=J, b=b)

    def to_dict(self) -> dict:
        return {"coupling_bits": self.couplings.bits, "bias_bits": self.biases.bits, "range": self.range,
                "trim_bits": None if self.trim is None else self.trim.bits}


# ---------------------------------------------------------------------------------------------
# the chip-aware training setting
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ChipSpec:
    """One chip-aware training setting, validated on construction.

    target : the chip; its topology is the graph the model may use, its ``couplings`` /
        ``biases`` / ``diagonal`` sections the ranges and bits.
    placement : (N,) distinct physical unit of each logical unit (compile's convention), or None
        (identity). Chosen by :func:`thermohw.chipaware.target_mask`.
    qat, bits, bias_bits, range : quantisation-aware training and its code widths (None: the
        target's) and range rule (``auto`` / ``full``, as ``thermohw compile --range``).
    mismatch, mismatch_scale : train through a drawn chip's component errors, at this multiple of
        the target's tolerances.
    seed : seeds the mismatch draws (with the cycle), so a resumed run sees the same chips.
    """

    target: Target
    placement: Any = None
    qat: bool = False
    bits: int | None = None
    bias_bits: int | None = None
    range: str = "auto"
    mismatch: bool = False
    mismatch_scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.target, Target):
            raise InputError(f"target must be a Target, got {type(self.target).__name__}")
        if self.placement is not None:
            pl = checked_placement(self.placement, None)
            if pl.size and pl.max() >= self.target.units:
                raise InputError(f"placement uses physical unit {int(pl.max())}; target {self.target.name!r} "
                                 f"has {self.target.units} units")
            object.__setattr__(self, "placement", pl)
        for name in ("qat", "mismatch"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        quantise.check_range(self.range)
        if (self.bits is not None or self.bias_bits is not None) and not self.qat:
            raise InputError("bits only matter for quantisation-aware training; add qat=True (--qat)")
        if self.qat:
            QuantSpec.from_target(self.target, bits=self.bits, bias_bits=self.bias_bits, range=self.range)
        if self.mismatch:
            comp = self.target.components
            if comp is None or not (comp.cap_tolerance or comp.resistor_tolerance or comp.gain_mismatch
                                    or comp.offset_V):
                raise InputError(f"target {self.target.name!r} lists no component tolerances; "
                                 "mismatch-aware training needs its 'components' section")
        if not (isinstance(self.mismatch_scale, (int, float)) and math.isfinite(self.mismatch_scale)
                and self.mismatch_scale > 0):
            raise InputError(f"mismatch_scale = {self.mismatch_scale!r} must be a finite number > 0")
        object.__setattr__(self, "mismatch_scale", float(self.mismatch_scale))
        if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError(f"seed = {self.seed!r} must be a whole number >= 0")
        object.__setattr__(self, "seed", int(self.seed))

    def quant(self) -> QuantSpec | None:
        """The precision quantisation-aware training applies (None without ``qat``)."""
        if not self.qat:
            return None
        return QuantSpec.from_target(self.target, bits=self.bits, bias_bits=self.bias_bits, range=self.range)

    def deployed(self, c: Computer) -> Computer:
        """The model to save after training: the quantised model for QAT, else ``c`` itself."""
        q = self.quant()
        return q.quantize(c) if q is not None else c

    def summary(self) -> dict:
        """What the trained model's meta and train.json record of the setting."""
        out = {"qat": self.qat, "bits": self.bits, "bias_bits": self.bias_bits, "range": self.range,
               "mismatch": self.mismatch, "mismatch_scale": self.mismatch_scale, "target": self.target.name}
        q = self.quant()
        if q is not None:
            out["quantisation"] = q.to_dict()
        return out

    def to_dict(self) -> dict:
        """The JSON the training checkpoint keeps (read back by :meth:`from_dict`)."""
        return {"target": self.target.to_dict(), "qat": self.qat, "bits": self.bits, "bias_bits": self.bias_bits,
                "range": self.range, "mismatch": self.mismatch, "mismatch_scale": self.mismatch_scale,
                "seed": self.seed, "placement": None if self.placement is None else self.placement.tolist()}

    @classmethod
    def from_dict(cls, d: Any, label: str = "chip setting") -> "ChipSpec":
        if not isinstance(d, dict) or "target" not in d:
            raise InputError(f"{label}: expected a mapping with a 'target'; the checkpoint is damaged")
        try:
            return cls(Target.from_dict(d["target"], label=f"{label} target"), placement=d.get("placement"),
                       qat=d.get("qat", False), bits=d.get("bits"), bias_bits=d.get("bias_bits"),
                       range=d.get("range", "auto"), mismatch=d.get("mismatch", False),
                       mismatch_scale=d.get("mismatch_scale", 1.0), seed=d.get("seed", 0))
        except InputError as e:
            raise InputError(f"{label}: {e}") from None
