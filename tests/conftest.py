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


@pytest.fixture(scope="session")
def mnist_test_images():
    """The genuine MNIST test images (IDX, labels beside them): $THERMOHW_MNIST_DIR, else the
    workspace's shared copy beside the repository. Tests that need it skip where it is absent."""
    import os
    from pathlib import Path

    folder = Path(os.environ.get("THERMOHW_MNIST_DIR") or
                  Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
    path = folder / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"MNIST test set not found at {folder} (set THERMOHW_MNIST_DIR to a folder holding "
                    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz)")
    return path
