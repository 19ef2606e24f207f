"""Errors of the kernel layer: a negative-errno return in Linux is a KernelError here."""

from __future__ import annotations

import errno as _errno

from directlpi.errors import DirectLPIError


class KernelError(DirectLPIError):
    """A kernel operation failed with ``errno`` (what Linux would return negated)."""

    def __init__(self, message: str, errno: int = _errno.EINVAL) -> None:
        super().__init__(message, errno)


class KernelBug(DirectLPIError):
    """Kernel code broke a rule of the context it runs in: a synchronous cross-CPU call
    with interrupts off or a spinlock held, sleeping in atomic context, a lock taken
    out of order or twice, another PE's system registers.  Linux would WARN, splat or
    deadlock; the model stops (EDEADLK).  It is a bug in the caller, not an API failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message, _errno.EDEADLK)
