"""Work on another CPU, the ways Linux has for it: IPIs, cross calls, irq_work, bring-up.

A PE reaches only its own ``ICC_*`` registers and runs one piece of code at a
time (:mod:`directlpi.kernel.context`), so work that must happen on another CPU
is *sent* there:

* **IPIs** are SGIs 0..5 of the GIC domain, per-CPU interrupts named as arm64
  names them (``enum ipi_msg_type``), hidden from the interrupt list of
  ``/proc/interrupts`` and shown as ``IPIn`` rows; the sending PE writes its own
  ``ICC_SGI1R_EL1``.
* ``smp_call_function_single(cpu, fn, wait=True)``: ``fn`` runs on ``cpu`` in
  hard-irq context (``IPI_CALL_FUNC``).  Only from a context that may wait --
  process context, interrupts on, no spinlock held -- else :class:`KernelBug`.
  With ``wait`` the caller spins with interrupts enabled until the target has run
  it (the machine runs meanwhile: any PE may take interrupts, the caller's
  included); a target that never takes the IPI (its interrupts masked, asleep) is
  a hang in Linux and a :class:`KernelBug` here.  For the current CPU ``fn`` runs
  at once with interrupts disabled, as in Linux.
* ``irq_work_queue_on(cpu, fn)``: from any context; ``fn`` runs later on ``cpu``
  in hard-irq context (``IPI_IRQ_WORK``), when that CPU takes the IPI.
* CPU bring-up and the hotplug stopper are the kernel's (``Kernel.cpu_online`` /
  ``cpu_offline``): the incoming or dying CPU runs that code itself.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from directlpi.kernel.errors import KernelBug, KernelError
from directlpi.kernel.irq.desc import IRQ_HANDLED

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel

IPI_RESCHEDULE = 0
IPI_CALL_FUNC = 1
IPI_CPU_STOP = 2
IPI_CPU_CRASH_STOP = 3
IPI_TIMER = 4
IPI_IRQ_WORK = 5
NR_IPI = 6
IPI_NAMES = ("Rescheduling interrupts", "Function call interrupts", "CPU stop interrupts",
             "CPU stop (for crash dump) interrupts", "Timer broadcast interrupts",
             "IRQ work interrupts")

Work = Callable[[], object]


class _CallSingle:
    """``call_single_data``: one queued cross call and whether it ran."""

    __slots__ = ("done", "fn")

    def __init__(self, fn: Work) -> None:
        self.fn = fn
        self.done = False


class Smp:
    """The IPIs of one kernel and the per-CPU queues they drain."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        n = len(kernel.board.cpus)
        self._calls: list[deque[_CallSingle]] = [deque() for _ in range(n)]
        self._irq_work: list[deque[Work]] = [deque() for _ in range(n)]
        self.ipi_base = 0
        """virq of IPI 0 (0 until :meth:`init`)."""

    # -- set-up ---------------------------------------------------------------------------

    def init(self) -> None:
        """``set_smp_ipi_range``: map the IPIs (on the boot CPU)."""
        self.ipi_base = self.k.gic.ipi_init(NR_IPI, self._handle_ipi)

    def ipi_setup(self) -> None:
        """``ipi_setup``: enable the IPIs on the CPU running this (its own SGI frame)."""
        if self.ipi_base:
            self.k.gic.ipi_enable_this_cpu(NR_IPI)

    # -- sending ------------------------------------------------------------------------

    def call_function_single(self, cpu: int, fn: Work, wait: bool = True) -> None:
        """``smp_call_function_single``.  Raises ENXIO for an offline CPU, and
        :class:`KernelBug` from a context that cannot wait or when the target never runs
        the function."""
        k = self.k
        k.ctx.check_cross_call("smp_call_function_single", cpu)   # even to itself, as Linux
        if cpu == k.this_cpu:
            with k.ctx.irqs_disabled():
                fn()
            return
        if cpu not in k.irq.online:
            raise KernelError(f"smp_call_function_single: CPU{cpu} is offline", errno.ENXIO)
        csd = _CallSingle(fn)
        self._calls[cpu].append(csd)
        k.gic.ipi_send(cpu, IPI_CALL_FUNC)
        if wait and not k.wait_for(lambda: csd.done):
            self._calls[cpu].remove(csd)
            raise KernelBug(f"smp_call_function_single: CPU{cpu} never ran the function (it did "
                            "not take IPI_CALL_FUNC: interrupts masked there?); CPU"
                            f"{k.this_cpu} would wait forever")

    def irq_work_queue_on(self, cpu: int, fn: Work) -> None:
        """Queue ``fn`` to run on ``cpu`` in hard-irq context; allowed in any context."""
        self._irq_work[cpu].append(fn)
        self.k.gic.ipi_send(cpu, IPI_IRQ_WORK)

    # -- receiving (hard-irq context, on the target) -----------------------------------------

    def _handle_ipi(self, irq: int, dev_id: Any) -> int:
        ipi = irq - self.ipi_base
        cpu = self.k.this_cpu
        if ipi == IPI_CALL_FUNC:
            calls = self._calls[cpu]
            while calls:
                csd = calls.popleft()
                csd.fn()
                csd.done = True
        elif ipi == IPI_IRQ_WORK:
            work = self._irq_work[cpu]
            while work:
                work.popleft()()
        return IRQ_HANDLED

    def proc_rows(self) -> list[tuple[str, list[int], str]]:
        """The ``IPIn:`` rows of /proc/interrupts (``arch_show_interrupts``)."""
        rows = []
        for i in range(NR_IPI if self.ipi_base else 0):
            desc = self.k.irq.irq_to_desc(self.ipi_base + i)
            assert desc is not None
            rows.append((f"IPI{i}", list(desc.kstat), IPI_NAMES[i]))
        return rows
