"""genirq core through the public API, end to end on the hardware model."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from directlpi import Platform
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import (
    IRQCHIP_STATE_ACTIVE,
    IRQCHIP_STATE_MASKED,
    IRQCHIP_STATE_PENDING,
)
from directlpi.kernel.irq.desc import IRQ_HANDLED, IRQ_NONE, IRQF_SHARED
from directlpi.kernel.kernel import Kernel
from tests.hw import arch
from tests.kernel.conftest import gicd, spi_bit, wired


def test_handler_runs_with_irq_and_dev_id(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 40)
    w.dev.raise_irq()
    assert plat.run_until_idle(verify=True) == 1
    assert w.runs == [(w.virq, 0)]
    assert kern.irq_to_desc(w.virq).kstat[0] == 1  # type: ignore[union-attr]


def test_free_irq_masks_the_line_and_stops_delivery(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 41)
    assert spi_bit(plat, arch.GICD_ISENABLER, 41)
    kern.free_irq(w.virq, w.dev)
    assert not spi_bit(plat, arch.GICD_ISENABLER, 41)
    w.dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert w.runs == []
    with pytest.raises(KernelError) as exc:
        kern.free_irq(w.virq, w.dev)
    assert exc.value.errno == errno.EINVAL and "already-free" in str(exc.value)


def test_shared_interrupts_run_every_handler(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    dev = plat.add_wired_device("shared", 42, level=False)
    virq = kern.gic_spi_mapping(42, dev.trigger)
    seen: list[str] = []

    def make(tag: str, result: int) -> Any:
        def handler(irq: int, dev_id: Any) -> int:
            seen.append(tag)
            return result
        return handler

    kern.request_irq(virq, make("a", IRQ_NONE), IRQF_SHARED, "a", dev_id="a")
    kern.request_irq(virq, make("b", IRQ_HANDLED), IRQF_SHARED, "b", dev_id="b")
    with pytest.raises(KernelError) as exc:
        kern.request_irq(virq, make("c", IRQ_HANDLED), 0, "c", dev_id="c")
    assert exc.value.errno == errno.EBUSY
    dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert seen == ["a", "b"]
    assert "a, b" in kern.proc_interrupts()


def test_request_of_an_unmapped_irq_is_einval(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    with pytest.raises(KernelError) as exc:
        kern.request_irq(999, lambda i, d: IRQ_HANDLED)
    assert exc.value.errno == errno.EINVAL


def test_lazy_disable_then_enable_resends_an_edge_interrupt(
        booted: tuple[Platform, Kernel]) -> None:
    """The interrupt arrives while disabled: the flow handler masks it at the chip and
    marks it pending; enable_irq unmasks and really retriggers it (GICD_ISPENDR)."""
    plat, kern = booted
    w = wired(plat, kern, 43, level=False)
    kern.disable_irq(w.virq)
    assert spi_bit(plat, arch.GICD_ISENABLER, 43)          # lazy: still unmasked
    w.dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert w.runs == []
    assert not spi_bit(plat, arch.GICD_ISENABLER, 43)      # masked when it fired
    kern.enable_irq(w.virq)
    plat.run_until_idle(verify=True)
    assert w.runs == [(w.virq, 0)]                         # delivered exactly once


def test_disable_nests_and_unbalanced_enable_warns(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 44)
    kern.disable_irq(w.virq)
    kern.disable_irq(w.virq)
    kern.enable_irq(w.virq)
    w.dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert w.runs == []
    kern.enable_irq(w.virq)
    plat.run_until_idle(verify=True)
    assert len(w.runs) == 1
    kern.enable_irq(w.virq)
    assert f"Unbalanced enable for IRQ {w.virq}" in kern.log.warnings()


def test_level_interrupt_is_not_resent_but_delivered_while_asserted(
        booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 45, level=True)
    kern.disable_irq(w.virq)
    w.dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert w.runs == []
    kern.enable_irq(w.virq)
    plat.run_until_idle(verify=True)
    assert len(w.runs) == 1                   # the line was still asserted
    assert not spi_bit(plat, arch.GICD_ISPENDR, 45)


def test_set_affinity_routes_through_irouter(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 46)
    kern.irq_set_affinity(w.virq, {3, 2})
    assert kern.irq_get_effective_affinity(w.virq) == {2}     # first CPU of the mask
    assert gicd(plat, arch.GICD_IROUTER + 8 * 46, 8) == plat.cpu(2).mpidr
    w.dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert w.runs == [(w.virq, 2)]
    for bad in (set(), {4}, {-1}):
        with pytest.raises(KernelError) as exc:
            kern.irq_set_affinity(w.virq, bad)
        assert exc.value.errno == errno.EINVAL


def test_force_routes_even_to_an_offline_cpu(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 51)
    kern.cpu_offline(3)
    with pytest.raises(KernelError):
        kern.irq_set_affinity(w.virq, {3})                   # no online CPU in the mask
    kern.irq_set_affinity(w.virq, {3}, force=True)
    assert kern.irq_get_effective_affinity(w.virq) == {3}
    assert gicd(plat, arch.GICD_IROUTER + 8 * 51, 8) == plat.cpu(3).mpidr


def test_affinity_set_before_request_takes_effect_at_once(booted: tuple[Platform, Kernel]) -> None:
    """As Linux's irq_set_affinity_locked: the GIC SPI chip routes an interrupt whether or
    not it is requested (it is not an affinity-on-activate chip), and startup keeps it."""
    plat, kern = booted
    w = wired(plat, kern, 47, request=False)
    kern.irq_set_affinity(w.virq, {3})
    assert kern.irq_get_effective_affinity(w.virq) == {3}
    assert gicd(plat, arch.GICD_IROUTER + 8 * 47, 8) == plat.cpu(3).mpidr
    from tests.kernel.conftest import make_handler
    kern.request_irq(w.virq, make_handler(kern, w), name="late")
    assert kern.irq_get_effective_affinity(w.virq) == {3}


def test_irqchip_state_pending_active_masked(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 48)
    assert kern.irq_get_irqchip_state(w.virq, IRQCHIP_STATE_PENDING) is False
    kern.irq_set_irqchip_state(w.virq, IRQCHIP_STATE_MASKED, True)
    kern.irq_set_irqchip_state(w.virq, IRQCHIP_STATE_PENDING, True)
    assert spi_bit(plat, arch.GICD_ISPENDR, 48)
    assert kern.irq_get_irqchip_state(w.virq, IRQCHIP_STATE_PENDING) is True
    assert kern.irq_get_irqchip_state(w.virq, IRQCHIP_STATE_MASKED) is True
    plat.run_until_idle(verify=True)
    assert w.runs == []
    kern.irq_set_irqchip_state(w.virq, IRQCHIP_STATE_MASKED, False)
    plat.run_until_idle(verify=True)
    assert w.runs == [(w.virq, 0)]
    kern.irq_set_irqchip_state(w.virq, IRQCHIP_STATE_ACTIVE, True)
    assert spi_bit(plat, arch.GICD_ISACTIVER, 48)
    kern.irq_set_irqchip_state(w.virq, IRQCHIP_STATE_ACTIVE, False)
    with pytest.raises(KernelError):
        kern.irq_set_irqchip_state(w.virq, 3, True)     # LINE_LEVEL cannot be set


def test_ppi_is_per_cpu(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    from directlpi.kernel.irq.domain import IrqFwspec
    virq = kern.irq_create_fwspec_mapping(IrqFwspec(kern.board.gic.fwnode, (1, 11, 4)))
    runs: list[int] = []

    def timer(irq: int, dev_id: Any) -> int:
        runs.append(kern.this_cpu)
        plat.set_ppi_line(kern.this_cpu, 27, False)   # the timer condition is cleared
        return IRQ_HANDLED

    kern.request_irq(virq, timer, name="arch_timer")
    assert kern.irq_to_desc(virq).irq_data.hwirq == 27  # type: ignore[union-attr]
    plat.set_ppi_line(0, 27, True)
    plat.run_until_idle(verify=True)
    assert runs == [0]


def test_proc_interrupts_has_linux_columns(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 49, level=True, name="uart-pl011")
    kern.irq_set_affinity(w.virq, {1})
    for _ in range(3):
        w.dev.raise_irq()
        plat.run_until_idle(verify=True)
    lines = kern.proc_interrupts().splitlines()
    assert lines[0].split() == ["CPU0", "CPU1", "CPU2", "CPU3"]
    row = next(ln for ln in lines if "uart-pl011" in ln)
    assert row.split() == [f"{w.virq}:", "0", "3", "0", "0", "GICv3", "49", "Level",
                           "uart-pl011"]
    assert lines[-1].split() == ["Err:", "0"]


def test_an_unmapped_interrupt_is_counted_and_eoid(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    # Enable and pend SPI 60 behind the kernel's back: nothing maps it.
    plat.bus.write(plat.gicd_base + arch.GICD_ISENABLER + 4, 1 << 28, 4)
    plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4, 1 << 28, 4)
    plat.run_until_idle(verify=True)
    assert "Unexpected interrupt (irqnr 60)" in kern.log.warnings()
    assert kern.proc_interrupts().splitlines()[-1].split() == ["Err:", "1"]
    assert plat.cpu(0).read_sysreg("ICC_RPR_EL1") == 0xFF      # it was EOId


def test_interrupt_storm_is_reported(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    dev = plat.add_wired_device("stuck", 50, level=True)
    virq = kern.gic_spi_mapping(50, dev.trigger)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name="never-acks")
    dev.raise_irq()
    from directlpi import DirectLPIError
    with pytest.raises(DirectLPIError) as exc:
        plat.run_until_idle(max_rounds=50)
    assert exc.value.errno == errno.EAGAIN and "storm" in str(exc.value)
