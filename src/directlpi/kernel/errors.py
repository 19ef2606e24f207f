"""Errors of the kernel layer: a negative-errno return in Linux is a KernelError here."""

from __future__ import annotations

import errno as _errno

from directlpi.errors import DirectLPIError


class KernelError(DirectLPIError):
    """A kernel operation failed with ``errno`` (what Linux would return negated)."""

    def __init__(self, message: str, errno: int = _errno.EINVAL) -> None:
        super().__init__(message, errno)
