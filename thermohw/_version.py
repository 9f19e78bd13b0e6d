"""The package version, on the ground floor so any module can read it without importing the
package's __init__ (which imports compile, which imports the backends: a cycle otherwise)."""
__version__ = "0.1.0"  # keep equal to pyproject.toml's version (tests/test_provenance.py checks)
