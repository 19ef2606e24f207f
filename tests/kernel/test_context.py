"""The execution-context model and SMP: what kernel code may do where it runs."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from directlpi import Platform
from directlpi.errors import OtherPeSysregError
from directlpi.kernel.context import RANK_DESC, ExecContext, Kind, SpinLock
from directlpi.kernel.errors import KernelBug, KernelError
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.smp import IPI_CALL_FUNC, IPI_IRQ_WORK


@pytest.fixture
def booted() -> tuple[Platform, Kernel]:
    plat = Platform.bare(cpus=4)
    return plat, plat.boot()


def test_a_lock_taken_twice_on_one_cpu_is_a_deadlock() -> None:
    ctx = ExecContext(2)
    lk = SpinLock("a", RANK_DESC)
    with ctx.running(0, Kind.PROCESS):
        ctx.lock(lk)
        with pytest.raises(KernelBug, match="recursion"):
            ctx.lock(lk)
        ctx.unlock(lk)


def test_a_lock_held_by_a_cpu_that_cannot_run_spins_forever() -> None:
    ctx = ExecContext(2)
    lk = SpinLock("a", RANK_DESC)
    with ctx.running(0, Kind.PROCESS):
        ctx.lock(lk)
        with ctx.running(1, Kind.HARDIRQ), pytest.raises(KernelBug, match="spins forever"):
            ctx.lock(lk)
        ctx.unlock(lk)


def test_two_locks_of_one_class_never_nest() -> None:
    ctx = ExecContext(1)
    a, b = SpinLock("desc a", RANK_DESC), SpinLock("desc b", RANK_DESC)
    with ctx.running(0, Kind.PROCESS), ctx.locked(a), pytest.raises(KernelBug, match="class"):
        ctx.lock(b)


def test_leaving_a_context_with_a_lock_held_is_a_bug() -> None:
    ctx = ExecContext(1)
    with pytest.raises(KernelBug, match="still holding"), ctx.running(0, Kind.PROCESS):
        ctx.lock(SpinLock("x", RANK_DESC))
    assert ctx.frames == []


def test_sleeping_is_refused_in_atomic_context() -> None:
    ctx = ExecContext(1)
    with ctx.running(0, Kind.PROCESS):
        ctx.might_sleep("ok")                     # process context, interrupts on
        with ctx.irqs_disabled(), pytest.raises(KernelBug, match="sleeping function"):
            ctx.might_sleep("request_irq")
    with ctx.running(0, Kind.HARDIRQ), pytest.raises(KernelBug, match="hard-irq"):
        ctx.might_sleep("request_irq")


def test_request_irq_from_a_handler_is_a_bug(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    dev = plat.add_wired_device("d", 40, level=False)
    virq = kern.gic_spi_mapping(40, dev.trigger)
    errors: list[Exception] = []

    def handler(irq: int, dev_id: Any) -> int:
        try:
            kern.request_irq(irq, lambda i, d: IRQ_HANDLED, name="nested", flags=0x80,
                             dev_id=1)
        except KernelBug as exc:
            errors.append(exc)
        return IRQ_HANDLED
    kern.request_irq(virq, handler, name="d", flags=0x80, dev_id=0)
    dev.raise_irq()
    plat.run_until_idle()
    (exc,) = errors
    assert "request_irq" in str(exc) and "hard-irq" in str(exc)


def test_kernel_code_cannot_reach_another_pes_registers(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    with kern.running_on(1, Kind.PROCESS):
        assert kern.read_sysreg("ICC_PMR_EL1") == 0xF0          # its own: fine
        with pytest.raises(OtherPeSysregError):
            plat.cpu(2).write_sysreg("ICC_PMR_EL1", 0)
    assert plat.cpu(2).read_sysreg("ICC_PMR_EL1") == 0xF0         # refused: unchanged


def test_a_cross_call_runs_on_the_target_in_its_ipi(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    seen: list[tuple[int, bool]] = []
    kern.smp_call_function_single(3, lambda: seen.append(
        (kern.this_cpu, kern.ctx.current is not None and kern.ctx.current.irqs_off)))
    assert seen == [(3, True)]
    ipi = kern.irq_to_desc(kern.smp.ipi_base + IPI_CALL_FUNC)
    assert ipi is not None and ipi.kstat[3] == 1
    assert "IPI1:" in kern.proc_interrupts() and "Function call interrupts" in \
        kern.proc_interrupts()


def test_a_cross_call_to_the_current_cpu_runs_at_once_interrupts_off(
        booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    seen: list[bool] = []
    with kern.task_on_cpu(2):
        kern.smp_call_function_single(2, lambda: seen.append(
            kern.ctx.current is not None and kern.ctx.current.irqs_off))
    assert seen == [True]


def test_a_cross_call_even_to_itself_is_refused_with_interrupts_off(
        booted: tuple[Platform, Kernel]) -> None:
    """Linux warns before its shortcut for the current CPU: a caller with interrupts off
    is wrong whichever CPU it names."""
    _, kern = booted
    seen: list[int] = []
    with kern.running_on(2, Kind.HARDIRQ), pytest.raises(KernelBug, match="cross-CPU"):
        kern.smp_call_function_single(2, lambda: seen.append(1))
    assert seen == []


def test_a_cross_call_nobody_takes_would_hang(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    plat.cpu(3).write_sysreg("ICC_PMR_EL1", 0)                    # CPU3 masks everything
    with pytest.raises(KernelBug, match="never ran"):
        kern.smp_call_function_single(3, lambda: None)
    with pytest.raises(KernelError) as exc:
        kern.cpu_offline(2) or kern.smp_call_function_single(2, lambda: None)
    assert exc.value.errno == errno.ENXIO


def test_irq_work_from_hard_irq_runs_later_on_its_cpu(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    dev = plat.add_wired_device("d", 41, level=False)
    virq = kern.gic_spi_mapping(41, dev.trigger)
    ran: list[int] = []

    def handler(irq: int, dev_id: Any) -> int:
        kern.irq_work_queue_on(2, lambda: ran.append(kern.this_cpu))   # allowed here
        assert ran == []                                              # not yet
        return IRQ_HANDLED
    kern.request_irq(virq, handler, name="d")
    dev.raise_irq()
    plat.run_until_idle()
    assert ran == [2]
    ipi = kern.irq_to_desc(kern.smp.ipi_base + IPI_IRQ_WORK)
    assert ipi is not None and ipi.kstat[2] == 1


def test_a_task_moves_only_from_outside_the_kernel(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    with kern.task_on_cpu(3):
        assert kern.this_cpu == 3
        with kern.running_on(3, Kind.PROCESS), pytest.raises(KernelBug), \
                kern.task_on_cpu(1):
            pass
    assert kern.this_cpu == 0
