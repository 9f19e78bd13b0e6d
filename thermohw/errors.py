"""Exception types. Every error a user can cause is a ``ThermohwError`` whose message names
the problem and the fix; the CLI prints it as one line and exits non-zero."""


class ThermohwError(Exception):
    """Base class for errors raised by thermohw on bad input or impossible requests."""


class InputError(ThermohwError, ValueError):
    """A file, array or argument is malformed or out of range."""


class NoSpaceError(ThermohwError, OSError):
    """A write failed for lack of space (or quota) on the device; the previous version of the
    file, if any, is intact."""


class DivergenceError(ThermohwError, FloatingPointError):
    """A simulation left the region where the explicit integrator is stable."""
