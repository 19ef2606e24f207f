"""Exceptions raised by directlpi.

Every error carries the errno a Linux kernel would return for the same mistake
(``errno`` attribute) and a message a person can act on.  Guest accesses on the
bus never raise: they are architecturally defined (RAZ/WI) and reported as
events.  What raises is misuse of the Python API (an unknown system register
name, an impossible platform option) or, when a platform is built with
``strict=True``, an access the architecture calls reserved or UNPREDICTABLE.
"""

from __future__ import annotations

import errno as _errno


class DirectLPIError(Exception):
    """Base class: an error with a kernel-style errno and an actionable message."""

    errno: int

    def __init__(self, message: str, errno: int = _errno.EINVAL) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message

    @property
    def errno_name(self) -> str:
        """The symbolic errno (``"EINVAL"``), as a kernel log would print it."""
        return _errno.errorcode.get(self.errno, str(self.errno))

    def __str__(self) -> str:
        return self.message


class ConfigError(DirectLPIError):
    """A platform or hardware option is out of range or inconsistent (EINVAL)."""


class UnknownSysregError(DirectLPIError):
    """A system register name the CPU interface does not implement (EINVAL).

    This is a programming error in the caller, not a guest access, so it raises.
    """


class OtherPeSysregError(DirectLPIError):
    """Software running on one PE named another PE's system registers (EPERM).

    No instruction can do that, so the hardware refuses it whatever ``strict`` says:
    there is no architectural outcome to model.  The BAD_ACCESS event is recorded.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, _errno.EPERM)


class SysregTrapError(DirectLPIError):
    """A system register access that does not complete at the current exception level
    (EPERM): UNDEFINED there, or trapped to EL3 (two Security states, SCR_EL3.FIQ = 1 and a
    Group 0 register at Non-secure EL1).  EL3 firmware would take the exception; the model
    has none to run, so it refuses the access whatever ``strict`` says and records a
    BAD_ACCESS event."""

    def __init__(self, message: str) -> None:
        super().__init__(message, _errno.EPERM)


class ArchitectureViolation(DirectLPIError):
    """Raised only by platforms built with ``strict=True``.

    A reserved, wrongly sized, read-only or write-only access, or a write the
    architecture calls UNPREDICTABLE.  The event has already been recorded and
    the model state is unchanged (the access was treated as RAZ/WI).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, _errno.EIO)
