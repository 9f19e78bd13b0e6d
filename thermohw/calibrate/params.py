"""The Langevin model a chip actually implements, allowing non-reciprocal couplings.

A real chip is not a gradient system: the coupling element that drives node i from node j
(G_ij) and the one that drives j from i (G_ji) are separate transconductors with separate gain
errors. :class:`ChipParameters` describes any chip of RC s-units in model units:

    dx_i/dt = -mu_i [2 J2_i x_i + 4 J4_i x_i^3 + b_i + sum_j K_ij x_j + h_i(t)]
              + sqrt(2 mu_i kT_i) eta_i

with ``K[i, j]`` the coupling *seen by unit i from unit j* (row i belongs to unit i's drift)
and ``h`` an imposed (external, exactly known) bias. A :class:`~thermohw.Computer` is the
special case K = J symmetric.

Gauge: mu and the energy scale are not separately defined by the dynamics. Scaling unit i's
mu_i by c and its row (J2_i, J4_i, b_i, K_i., h_i) and kT_i by 1/c leaves the motion
unchanged; :meth:`ChipParameters.gauge` re-expresses a chip with a chosen reference mobility
(the "dynamically equivalent" parameters). Calibration compares like with like in one gauge.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.rc import circuit_parameters
from ..computer import Computer, _per_unit
from ..errors import InputError

_RECIP_RTOL = 1e-12


@dataclass(frozen=True, eq=False)
class ChipParameters:
    """Per-unit Langevin parameters of a (possibly non-reciprocal) chip, model units.

    J2, J4, b, mu, kT : (N,) arrays (scalars broadcast).
    K : (N, N) directed couplings, ``K[i, j]`` = coupling in unit i's drift from x_j; zero on
        the diagonal and wherever ``mask`` is False.
    mask : (N, N) bool, symmetric, False on the diagonal: which coupling elements exist.
    """

    J2: Any
    J4: Any
    b: Any
    mu: Any
    kT: Any
    K: Any
    mask: Any

    def __post_init__(self) -> None:
        K = np.array(self.K, dtype=np.float64)
        if K.ndim != 2 or K.shape[0] != K.shape[1]:
            raise InputError(f"K must be a square matrix, got shape {K.shape}")
        n = K.shape[0]
        if not np.all(np.isfinite(K)):
            raise InputError("K contains NaN or inf")
        mask = np.array(self.mask, dtype=bool)
        if mask.shape != (n, n):
            raise InputError(f"mask has shape {mask.shape}; K has {K.shape}")
        if np.any(np.diag(mask)) or not np.array_equal(mask, mask.T):
            raise InputError("mask must be symmetric with a False diagonal (on-site terms are J2, J4)")
        if np.any(K[~mask] != 0):
            raise InputError("K has nonzero entries where mask is False; zero them or extend the mask")
        K.setflags(write=False)
        mask.setflags(write=False)
        fz = object.__setattr__
        fz(self, "K", K)
        fz(self, "mask", mask)
        for name in ("J2", "J4", "b", "mu", "kT"):
            fz(self, name, _per_unit(name, getattr(self, name), n))
        if np.any(self.mu <= 0) or np.any(self.kT <= 0):
            raise InputError("mu and kT must be > 0 for every unit")

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_computer(cls, c: Computer) -> "ChipParameters":
        """The parameters of a gradient system (K = J)."""
        return cls(J2=c.J2, J4=c.J4, b=c.b, mu=c.mu, kT=c.kT, K=c.J, mask=c.mask)

    @classmethod
    def from_circuit(cls, circ, *, gauge: float, mask: np.ndarray | None = None) -> "ChipParameters":
        """The model an RC circuit (``backends.rc.RCCircuit``) implements, in the gauge
        a = mu0 C0 (``RCCircuit.gauge`` of the nominal circuit):

            mu_i = a tau / C_i, J2 = g/(2a), J4 = k3 V_s^2/(4a), b = -I_b/(V_s a),
            K = G/a (directed), kT_i = s_i^2 / (2 a C_i V_s^2).

        Same formulas as ``rc.circuit_to_computer`` (``rc.circuit_parameters``) without
        requiring G symmetric. Pass the *nominal* circuit's gauge so that a mismatched circuit
        is expressed in the units of the program it was built from."""
        return cls.from_parameters(circuit_parameters(circ, gauge), mask)

    @classmethod
    def from_parameters(cls, m: dict, mask: np.ndarray | None = None) -> "ChipParameters":
        """From a backend's parameter dict (J2, J4, b, mu, kT and directed K, e.g. its
        ``mismatched_parameters``); ``mask`` defaults to the pairs with a coupling either way."""
        m = dict(m)
        K = m.pop("K")
        if mask is None:
            mask = (K != 0) | (K.T != 0)
            np.fill_diagonal(mask, False)
        return cls(**m, K=np.where(mask, K, 0.0), mask=mask)

    # ---- views --------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return self.K.shape[0]

    @property
    def reciprocal(self) -> bool:
        """True when K is symmetric (a gradient system with an energy)."""
        scale = max(1.0, float(np.max(np.abs(self.K)))) if self.K.size else 1.0
        return bool(np.max(np.abs(self.K - self.K.T), initial=0.0) <= _RECIP_RTOL * scale)

    @property
    def J(self) -> np.ndarray:
        """The symmetric part (K + K^T)/2."""
        return 0.5 * (self.K + self.K.T)

    def asymmetry_rms(self) -> float:
        """RMS over existing couplings of the antisymmetric part (K - K^T)/2."""
        iu = np.triu_indices(self.n_units, 1)
        m = self.mask[iu]
        if not np.any(m):
            return 0.0
        d = 0.5 * (self.K - self.K.T)[iu][m]
        return float(np.sqrt(np.mean(d * d)))

    def gauge(self, mu_ref: Any) -> "ChipParameters":
        """The dynamically equivalent parameters with mobility ``mu_ref`` (scalar or (N,)):
        unit i's drift coefficients mu_i * (J2, J4, b, K_i.) and diffusion mu_i kT_i are kept,
        so (J2, J4, b, K_i., kT_i) scale by mu_i / mu_ref_i. The imposed bias h then also acts
        with weight mu_i / mu_ref_i - which is why an exactly known h identifies mu."""
        mu_ref = _per_unit("mu_ref", mu_ref, self.n_units)
        r = self.mu / mu_ref
        return ChipParameters(J2=self.J2 * r, J4=self.J4 * r, b=self.b * r, mu=mu_ref, kT=self.kT * r,
                              K=self.K * r[:, None], mask=self.mask)

    def to_computer(self, *, n_visible: int = 0, symmetrise: bool = False, **kw: Any) -> Computer:
        """A :class:`Computer`. Needs K symmetric unless ``symmetrise`` (then J = (K + K^T)/2
        and the dropped antisymmetric part is :meth:`asymmetry_rms`)."""
        if not symmetrise and not self.reciprocal:
            raise InputError("this chip's couplings are not reciprocal (K_ij != K_ji), so it is not a "
                             f"gradient system (antisymmetric RMS {self.asymmetry_rms():.3g}); pass "
                             "symmetrise=True to keep the symmetric part")
        return Computer(J=self.J, b=self.b, mask=self.mask, n_visible=n_visible, J2=self.J2, J4=self.J4,
                        mu=self.mu, kT=self.kT, **kw)

    def drift(self, x: np.ndarray, h: np.ndarray | None = None) -> np.ndarray:
        """dx/dt without noise for states (..., N), model units."""
        x = np.asarray(x, dtype=np.float64)
        g = x @ self.K.T + self.b + x * (2.0 * self.J2 + 4.0 * self.J4 * x * x)
        if h is not None:
            g = g + h
        return -self.mu * g

    def replace(self, **changes: Any) -> "ChipParameters":
        import dataclasses

        return dataclasses.replace(self, **changes)
