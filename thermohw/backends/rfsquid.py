"""The rf-SQUID array record: physical parameters of the lowered chip (:class:`RFSquidArray`,
SI units), the flux quantum, and its hardware energy. The model and its mapping are described
in :mod:`thermohw.backends.josephson`; the netlist is :mod:`thermohw.backends.josephson_spice`."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.constants import hbar as HBAR
from scipy.constants import physical_constants

from ..energy import K_B  # defined once for the package
from ..errors import InputError
from . import _thermal as th

PHI0 = physical_constants["mag. flux quantum"][0]   # Wb
PHI_R = PHI0 / (2 * math.pi)                          # reduced flux quantum, Wb


@dataclass(frozen=True, eq=False)
class RFSquidArray:
    """Physical parameters of an rf-SQUID array, SI units, logical unit order.

    I_c, L, C, R : (N,) critical current [A], loop self-inductance [H], junction capacitance
        [F], shunt resistance [ohm].
    delta_phi_x : (N,) flux-bias shift from half a flux quantum, rad (phi_x = pi + delta).
    s : (N,) phase scale, rad of loop phase per unit of x (phi = pi + s x).
    M : (N, N) mutual inductances [H], symmetric, zero diagonal (sign: module docstring).
    coupled : (N, N) bool, the programmed couplers (a coupler may be programmed to 0).
    temperature : (N,) bath (shunt) temperature, K.
    energy_unit_J : eps, joules per model energy unit. tau_s : seconds per model time unit.
    """

    I_c: np.ndarray
    L: np.ndarray
    C: np.ndarray
    R: np.ndarray
    delta_phi_x: np.ndarray
    s: np.ndarray
    M: np.ndarray
    coupled: np.ndarray
    temperature: np.ndarray
    energy_unit_J: float
    tau_s: float
    n_visible: int
    image_shape: tuple | None = None
    meta: dict | None = None

    def __post_init__(self) -> None:
        th.freeze_fields(self, "I_c", ("L", "C", "R", "delta_phi_x", "s", "temperature"), ("M",),
                         ("L", "C", "R", "s", "temperature"), "critical current per SQUID")
        if np.any(self.I_c < 0):
            raise InputError("I_c must be >= 0")

    # ---- derived quantities ------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return self.I_c.shape[0]

    @property
    def E_J(self) -> np.ndarray:
        """Josephson energy Phi_r I_c, J."""
        return PHI_R * self.I_c

    @property
    def E_L(self) -> np.ndarray:
        """Inductive energy scale Phi_r^2 / L, J."""
        return PHI_R ** 2 / self.L

    @property
    def beta_L(self) -> np.ndarray:
        """2 pi L I_c / Phi0 = E_J / E_L (< 1: one well at phi_x = pi)."""
        return self.E_J / self.E_L

    @property
    def K(self) -> np.ndarray:
        """Phase-stiffness matrix to first order in M: diag(E_L) - Phi_r^2 M_ij / (L_i L_j), J/rad^2."""
        K = -PHI_R ** 2 * self.M / np.outer(self.L, self.L)
        np.fill_diagonal(K, self.E_L)
        return K

    @property
    def flux_bias_Phi0(self) -> np.ndarray:
        """Applied flux per loop in flux quanta: 1/2 + delta / (2 pi)."""
        return 0.5 + self.delta_phi_x / (2 * math.pi)

    @property
    def beta_C(self) -> np.ndarray:
        """Stewart-McCumber parameter 2 pi I_c R^2 C / Phi0 (overdamped needs << 1)."""
        return 2 * math.pi * self.I_c * self.R ** 2 * self.C / PHI0

    @property
    def omega_p(self) -> np.ndarray:
        """Plasma frequency sqrt(2 pi I_c / (Phi0 C)), rad/s."""
        return np.sqrt(2 * math.pi * self.I_c / (PHI0 * self.C))

    @property
    def kT_J(self) -> np.ndarray:
        return K_B * self.temperature

    @property
    def hbar_omega_p_over_kT(self) -> np.ndarray:
        """hbar omega_p / k_B T (classical Langevin needs << 1)."""
        return HBAR * self.omega_p / self.kT_J

    def truncation_error_kT(self, x: float) -> np.ndarray:
        """The dropped x^6 term at |x|, per SQUID, in units of its k_B T:
        -E_J s^6 x^6 / 720 / k_B T (= -J4' s^2 x^6 / 30)."""
        return -self.E_J * (self.s * x) ** 6 / 720.0 / self.kT_J

    def residual_kT(self, x: float) -> np.ndarray:
        """Everything beyond x^4, all orders: E_J [cos(sx) - 1 + (sx)^2/2 - (sx)^4/24] / k_B T."""
        a = self.s * x
        return self.E_J * (np.cos(a) - 1 + a * a / 2 - a ** 4 / 24) / self.kT_J


def energy_J(art: RFSquidArray, x: np.ndarray, *, order: int | None = None) -> np.ndarray:
    """Hardware potential (joules) at states x (..., N), relative to x = 0: the inductive
    energy 1/2 psi^T K psi with psi = s x - delta (first order in M) plus sum_i E_J cos(s x)
    (-E_J cos(phi) at phi = pi + s x), the cosine in full (``order=None``) or expanded to
    ``order`` (2, 4 or 6) in x."""
    x = np.asarray(x, dtype=np.float64)
    K, s, d = art.K, art.s, art.delta_phi_x

    def u(xx):
        psi = s * xx - d
        ind = 0.5 * np.einsum("...i,ij,...j->...", psi, K, psi)
        a = s * xx
        if order is None:
            c = np.cos(a)
        else:
            terms = {0: 1.0, 2: -a ** 2 / 2, 4: a ** 4 / 24, 6: -a ** 6 / 720}
            c = sum(v for k, v in terms.items() if k <= order)
        return ind + np.sum(art.E_J * c, axis=-1)

    return u(x) - u(np.zeros(x.shape[-1]))


def mutual_inductance_error(art: RFSquidArray) -> dict:
    """What the first-order-in-M hardware model leaves out, from the exact inductance inverse
    K_exact = Phi_r^2 (diag(L) + M)^{-1}: per unit J2 error and bias error in kT (of the unit)
    and the largest coupling error (including next-nearest pairs the mask lacks) in kT.
    The leading term is K2 = K1 diag(1/E_L) K1."""
    n = art.n_units
    if n == 1 or not np.any(art.M):
        z = np.zeros(n)
        return {"J2_kT": z, "b_kT": z, "J_kT_max": 0.0, "uncoupled_J_kT_max": 0.0}
    Lmat = art.M + np.diag(art.L)
    dK = PHI_R ** 2 * np.linalg.inv(Lmat) - art.K
    dK = 0.5 * (dK + dK.T)
    s, kT = art.s, art.kT_J
    dJ2 = s * s * np.diag(dK) / 2 / kT
    db = -s * (dK @ art.delta_phi_x) / kT
    dJ = dK * np.outer(s, s) / np.sqrt(np.outer(kT, kT))
    np.fill_diagonal(dJ, 0.0)
    return {"J2_kT": dJ2, "b_kT": db, "J_kT_max": float(np.max(np.abs(dJ))),
            "uncoupled_J_kT_max": float(np.max(np.abs(np.where(art.coupled, 0.0, dJ))))}
