"""Where kernel code runs: one PE at a time, in a context it knows, holding locks it knows.

Linux code always runs on one CPU and in a known context -- process context
(may sleep, interrupts on), hard-irq context (interrupts off), the CPU-hotplug
stopper on a dying CPU (interrupts off) -- and lockdep knows which spinlocks it
holds.  What a piece of code may do follows from that: a PE reaches only its own
``ICC_*`` system registers; a synchronous cross-CPU call
(``smp_call_function_single``) is forbidden with interrupts disabled, from
hard-irq context, or holding a spinlock (the target might need the lock, or the
caller's CPU the IPI that never comes); a function that may sleep is forbidden
in atomic context.

This module is that bookkeeping.  The kernel pushes a :class:`Frame` when code
starts running on a PE (a driver call in process context, an exception entry,
the hotplug stopper, a secondary CPU starting) and pops it when that code is
done; the *platform* makes the hardware execute on that PE at the same time,
so an ``ICC_*`` access the kernel makes for any other PE is refused by the
hardware.  Frames nest (an interrupt taken while a CPU spins waiting for a
cross call; a handler that lets other PEs run), and each knows its CPU.

Locks are lockdep in small: every spinlock has a rank, and a CPU may only take
locks in increasing rank -- ``desc->lock`` (:data:`RANK_DESC`) before a
redistributor's ``rd_lock`` (:data:`RANK_RD`), as Linux's ``direct_lpi_inv``
nests them; two locks of the same rank nest only never (the irq descriptors
share one lock class).  Taking a lock its own CPU already holds is a deadlock;
one another CPU holds while that CPU cannot run (it is below us on the one
stack of the model) would spin forever.  Both raise :class:`KernelBug`.

Every rule violation raises :class:`KernelBug`: it is a bug in the kernel code
that made the call (Linux would WARN, splat or hang), never an API failure.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from directlpi.kernel.errors import KernelBug


class Kind(Enum):
    """What a frame is running."""

    PROCESS = "process context"
    HARDIRQ = "hard-irq context"
    STOPPER = "the CPU-hotplug stopper (interrupts off, on the dying CPU)"
    STARTUP = "secondary CPU startup (interrupts off, on the incoming CPU)"


RANK_DESC: Final = 10
"""``irq_desc::lock`` (a raw spinlock taken with interrupts off)."""
RANK_RD: Final = 20
"""A redistributor's ``rd_lock`` (Linux: ``gic_data_rdist_cpu(cpu)->rd_lock``)."""
RANK_ITS: Final = 25
"""An ITS's command queue lock (Linux: ``its_node::lock``), taken under ``desc->lock``."""


class SpinLock:
    """A raw spinlock: its name, lock-order rank and current holder."""

    __slots__ = ("name", "owner", "rank")

    def __init__(self, name: str, rank: int) -> None:
        self.name = name
        self.rank = rank
        self.owner: Frame | None = None

    def __repr__(self) -> str:
        return f"<SpinLock {self.name}>"


class Frame:
    """Code running on one CPU: its context, interrupt state and the locks it holds."""

    __slots__ = ("cpu", "irqs_off", "kind", "locks")

    def __init__(self, cpu: int, kind: Kind, irqs_off: bool) -> None:
        self.cpu = cpu
        self.kind = kind
        self.irqs_off = irqs_off
        self.locks: list[SpinLock] = []

    def atomic(self) -> str | None:
        """Why this frame may not sleep or wait for another CPU (None: it may)."""
        if self.locks:
            return f"holding {self.locks[-1].name}"
        if self.kind is not Kind.PROCESS:
            return f"in {self.kind.value}"
        if self.irqs_off:
            return "with interrupts disabled"
        return None

    def __repr__(self) -> str:
        return f"<Frame CPU{self.cpu} {self.kind.name}>"


class ExecContext:
    """The stack of frames of one kernel, and its lock checks.

    :attr:`cpu` is the CPU the innermost frame runs on (meaningful while a frame
    exists); which PE the hardware executes is the platform's business.
    """

    __slots__ = ("_hardirq", "cpu", "frames")

    def __init__(self, ncpus: int) -> None:
        self.frames: list[Frame] = []
        self.cpu = 0
        #: One hard-irq frame per CPU, reused: a CPU takes no interrupt while in one.
        self._hardirq = [Frame(c, Kind.HARDIRQ, True) for c in range(ncpus)]

    @property
    def current(self) -> Frame | None:
        return self.frames[-1] if self.frames else None

    # -- frames -------------------------------------------------------------------------

    def enter(self, cpu: int, kind: Kind, irqs_off: bool = False) -> Frame:
        """Code of ``kind`` starts running on ``cpu``; pair with :meth:`leave`."""
        if kind is Kind.HARDIRQ:
            frame = self._hardirq[cpu]
            if frame in self.frames:
                raise KernelBug(f"CPU{cpu} took an interrupt while already in hard-irq "
                                "context (interrupts are off there)")
        else:
            frame = Frame(cpu, kind, irqs_off)
        self.frames.append(frame)
        self.cpu = cpu
        return frame

    def leave(self, frame: Frame, unwinding: bool = False) -> None:
        """That code is done.  Returning normally with a lock still held is a bug of the
        code that ran; unwinding after an error (which propagates) releases them."""
        frames = self.frames
        frames.pop()
        if frames:
            self.cpu = frames[-1].cpu
        if frame.locks:
            held = ", ".join(lk.name for lk in frame.locks)
            for lk in frame.locks:
                lk.owner = None
            frame.locks.clear()
            if not unwinding:
                raise KernelBug(f"CPU{frame.cpu} left {frame.kind.value} still holding {held}")

    def running(self, cpu: int, kind: Kind, irqs_off: bool = False) -> _Running:
        """Code of ``kind`` runs on ``cpu`` for the body of the ``with``."""
        return _Running(self, cpu, kind, irqs_off)

    def frame_of(self, cpu: int) -> Frame | None:
        """The innermost frame running on ``cpu`` (None: nothing runs there now)."""
        for f in reversed(self.frames):
            if f.cpu == cpu:
                return f
        return None

    def can_take_interrupt(self, cpu: int) -> bool:
        """Whether ``cpu`` could take an IRQ exception now (it is not running with
        interrupts off or holding a spinlock)."""
        f = self.frame_of(cpu)
        return f is None or (f.kind is Kind.PROCESS and not f.irqs_off and not f.locks)

    def irqs_disabled(self) -> _IrqsOff:
        """``local_irq_save`` / ``local_irq_restore`` around the body."""
        return _IrqsOff(self._frame("local_irq_save"))

    def _frame(self, what: str) -> Frame:
        f = self.current
        if f is None:
            raise KernelBug(f"{what} called outside kernel context (no CPU runs kernel code)")
        return f

    # -- the rules ------------------------------------------------------------------------

    def might_sleep(self, what: str) -> None:
        """``might_sleep()``: refuse in atomic context."""
        f = self.current
        if f is not None and (why := f.atomic()) is not None:
            raise KernelBug(f"BUG: sleeping function called from invalid context: {what} "
                            f"on CPU{f.cpu} {why}")

    def check_cross_call(self, what: str, target: int) -> None:
        """A synchronous call into another CPU is only allowed where waiting is."""
        f = self._frame(what)
        why = f.atomic()
        if why is not None:
            raise KernelBug(f"{what}(CPU{target}) from CPU{f.cpu} {why}: a synchronous "
                            "cross-CPU call cannot be made there (it may deadlock); queue "
                            "the work (irq_work, an IPI handled later) or do it on the CPU "
                            "that owns the state")

    # -- spinlocks --------------------------------------------------------------------------

    def lock(self, lk: SpinLock) -> None:
        """``raw_spin_lock_irqsave``: take ``lk`` on the running CPU."""
        frames = self.frames
        f = frames[-1] if frames else self._frame(f"spin_lock({lk.name})")
        locks = f.locks
        if lk.owner is not None or (locks and locks[-1].rank >= lk.rank):
            self._refuse(lk, f)
        lk.owner = f
        locks.append(lk)

    def _refuse(self, lk: SpinLock, f: Frame) -> None:
        owner = lk.owner
        if owner is not None:
            if owner.cpu == f.cpu:
                raise KernelBug(f"BUG: spinlock recursion on CPU{f.cpu}: {lk.name} is already "
                                "held by this CPU (deadlock)")
            raise KernelBug(f"CPU{f.cpu} spins forever on {lk.name}: CPU{owner.cpu} holds it "
                            f"and cannot run until CPU{f.cpu} is done (deadlock)")
        top = f.locks[-1]
        what = ("the same lock class" if top.rank == lk.rank
                else "a lock that must be taken first")
        raise KernelBug(f"possible deadlock (lock order): CPU{f.cpu} takes {lk.name} while "
                        f"holding {top.name}, {what}; the order is desc->lock, then rd_lock")

    def unlock(self, lk: SpinLock) -> None:
        f = lk.owner
        frames = self.frames
        if f is None or not frames or f is not frames[-1]:
            raise KernelBug(f"unlock of {lk.name}, which the running CPU does not hold")
        lk.owner = None
        locks = f.locks
        if locks[-1] is lk:
            locks.pop()
        else:
            locks.remove(lk)

    def locked(self, lk: SpinLock) -> _Locked:
        """``with ctx.locked(desc.lock):`` -- lock, and unlock however the body ends."""
        return _Locked(self, lk)

    def unlocked(self, lk: SpinLock) -> _Unlocked:
        """Drop a held lock for the body (``raw_spin_unlock`` ... ``raw_spin_lock``)."""
        return _Unlocked(self, lk)


# Context managers as small classes: these sit on per-interrupt and per-call paths,
# where a generator-based @contextmanager costs several times more.

class _Running:
    __slots__ = ("_args", "_ctx", "_frame")

    def __init__(self, ctx: ExecContext, cpu: int, kind: Kind, irqs_off: bool) -> None:
        self._ctx = ctx
        self._args = (cpu, kind, irqs_off)

    def __enter__(self) -> Frame:
        self._frame = self._ctx.enter(*self._args)
        return self._frame

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._ctx.leave(self._frame, unwinding=exc_type is not None)


class _Locked:
    __slots__ = ("_ctx", "_lk")

    def __init__(self, ctx: ExecContext, lk: SpinLock) -> None:
        self._ctx = ctx
        self._lk = lk

    def __enter__(self) -> None:
        self._ctx.lock(self._lk)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._lk.owner is not None:
            self._ctx.unlock(self._lk)


class _Unlocked(_Locked):
    __slots__ = ()

    def __enter__(self) -> None:
        self._ctx.unlock(self._lk)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._ctx.lock(self._lk)


class _IrqsOff:
    __slots__ = ("_f", "_prev")

    def __init__(self, f: Frame) -> None:
        self._f = f

    def __enter__(self) -> None:
        self._prev = self._f.irqs_off
        self._f.irqs_off = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._f.irqs_off = self._prev
