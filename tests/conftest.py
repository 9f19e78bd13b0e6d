import numpy as np
import pytest

from thermohw import Computer


def random_computer(n_visible=3, n_hidden=3, *, seed=0, scale=0.3, connectivity="paper", J4=1.0, J2=1.0,
                    kT=0.1, mu=1.0):
    """A small computer with random couplings and biases (symmetric, masked)."""
    rng = np.random.default_rng(seed)
    c = Computer.zeros(n_visible, n_hidden, connectivity=connectivity, J2=J2, J4=J4, kT=kT, mu=mu)
    J = rng.normal(0, scale, c.J.shape)
    J = np.where(c.mask, (J + J.T) / 2, 0.0)
    return c.replace(J=J, b=rng.normal(0, scale, c.n_units))


@pytest.fixture
def small_computer():
    return random_computer()
