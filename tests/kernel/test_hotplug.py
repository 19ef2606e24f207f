"""CPU hotplug: migration of unmanaged interrupts, shutdown/restart of managed ones."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from directlpi import Platform
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.affinity import IrqAffinity, group_cpus_evenly, irq_create_affinity_masks
from directlpi.kernel.irq.desc import IRQ_HANDLED, IRQ_TYPE_EDGE_RISING
from directlpi.kernel.irq.domain import IrqFwspec
from directlpi.kernel.kernel import Kernel
from tests.hw import arch
from tests.kernel.conftest import spi_bit, wired


def test_offline_moves_an_unmanaged_interrupt_and_keeps_it_pending(
        booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 40)
    kern.irq_set_affinity(w.virq, {2})
    w.dev.raise_irq()                       # pending on CPU2, not yet taken
    kern.cpu_offline(2)
    assert kern.irq_get_effective_affinity(w.virq) == {0}
    assert f"IRQ {w.virq}: no longer affine to CPU2" in kern.log.warnings()
    plat.run_until_idle(verify=True)
    assert w.runs == [(w.virq, 0)]
    assert 2 not in kern.online_cpus


def test_offline_stays_within_the_affinity_mask(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 41)
    kern.irq_set_affinity(w.virq, {2, 3})
    assert kern.irq_get_effective_affinity(w.virq) == {2}
    kern.cpu_offline(2)
    assert kern.irq_get_effective_affinity(w.virq) == {3}
    assert kern.irq_get_affinity(w.virq) == {2, 3}
    assert not kern.log.warnings()


def test_interrupts_not_on_the_outgoing_cpu_do_not_move(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    w = wired(plat, kern, 42)
    kern.irq_set_affinity(w.virq, {1})
    iroute = plat.bus.read(plat.gicd_base + arch.GICD_IROUTER + 8 * 42, 8)
    kern.cpu_offline(3)
    assert plat.bus.read(plat.gicd_base + arch.GICD_IROUTER + 8 * 42, 8) == iroute


def managed_spis(plat: Platform, kern: Kernel, first: int, masks: list[set[int]]
                 ) -> tuple[int, list[list[int]]]:
    from directlpi.kernel.irq.core import IrqAffinityDesc
    aff = [IrqAffinityDesc(frozenset(m), is_managed=True) for m in masks]
    fwspec = IrqFwspec(kern.board.gic.fwnode, (0, first - 32, IRQ_TYPE_EDGE_RISING))
    assert kern.gic.domain is not None
    virq = kern.irq_domain_alloc_irqs(kern.gic.domain, len(masks), fwspec, affinity=aff)
    runs: list[list[int]] = [[] for _ in masks]
    for i in range(len(masks)):
        kern.irq_set_irq_type(virq + i, IRQ_TYPE_EDGE_RISING)

        def handler(irq: int, dev_id: Any, i: int = i) -> int:
            runs[i].append(kern.this_cpu)
            return IRQ_HANDLED
        kern.request_irq(virq + i, handler, name=f"q{i}")
    return virq, runs


def pend(plat: Platform, intid: int) -> None:
    plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4 * (intid // 32), 1 << (intid % 32), 4)


def test_managed_interrupt_shuts_down_with_its_last_cpu_and_restarts(
        booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    virq, runs = managed_spis(plat, kern, 100, [{0}, {1}, {2}, {3}])
    assert [kern.irq_get_effective_affinity(virq + i) for i in range(4)] == [{0}, {1}, {2}, {3}]
    kern.cpu_offline(3)
    assert not spi_bit(plat, arch.GICD_ISENABLER, 103)           # shut down: masked
    assert kern.irq_get_affinity(virq + 3) == {3}                # mask untouched
    pend(plat, 103)
    plat.run_until_idle(verify=True)
    assert runs[3] == []
    kern.cpu_online(3)
    plat.run_until_idle(verify=True)
    assert runs[3] == [3]                                         # restarted on CPU3
    assert not kern.log.warnings()


def test_managed_interrupt_moves_within_its_mask_first(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    virq, runs = managed_spis(plat, kern, 110, [{2, 3}])
    assert kern.irq_get_effective_affinity(virq) == {2}
    kern.cpu_offline(2)
    assert kern.irq_get_effective_affinity(virq) == {3}
    kern.cpu_offline(3)
    assert not spi_bit(plat, arch.GICD_ISENABLER, 110)
    pend(plat, 110)
    kern.cpu_online(3)
    plat.run_until_idle(verify=True)
    assert runs[0] == [3]


def test_managed_interrupt_requested_while_its_cpus_are_offline(
        booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    kern.cpu_offline(1)
    virq, runs = managed_spis(plat, kern, 120, [{1}])
    assert not spi_bit(plat, arch.GICD_ISENABLER, 120)
    kern.cpu_online(1)
    pend(plat, 120)
    plat.run_until_idle(verify=True)
    assert runs[0] == [1]
    assert virq


def test_hotplug_errors(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    for cpu in (1, 2, 3):
        kern.cpu_offline(cpu)
    with pytest.raises(KernelError) as exc:
        kern.cpu_offline(0)
    assert exc.value.errno == errno.EBUSY
    with pytest.raises(KernelError):
        kern.cpu_offline(2)
    with pytest.raises(KernelError):
        kern.cpu_online(0)
    with pytest.raises(KernelError):
        kern.cpu_online(9)


def test_offlined_cpu_takes_nothing_until_it_returns(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    kern.cpu_offline(2)
    virq = kern.irq_create_fwspec_mapping(IrqFwspec(kern.board.gic.fwnode, (1, 11, 4)))
    runs: list[int] = []

    def timer(irq: int, dev_id: Any) -> int:
        runs.append(kern.this_cpu)
        plat.set_ppi_line(kern.this_cpu, 27, False)
        return IRQ_HANDLED
    kern.request_irq(virq, timer, name="timer")
    plat.set_ppi_line(2, 27, True)
    plat.run_until_idle()
    assert runs == []
    with pytest.raises(KernelError) as exc:  # no code runs on an offline CPU
        kern.enable_percpu_irq(virq, cpu=2)
    assert exc.value.errno == errno.ENXIO
    plat.run_until_idle(verify=True)
    assert runs == []
    # Bringing CPU2 up re-initialises its redistributor, which masks every private
    # interrupt (as gic_cpu_init does); a per-CPU driver re-enables its PPI from its
    # CPU-starting callback.
    kern.cpu_online_hooks.append(lambda cpu: kern.enable_percpu_irq(virq, cpu=cpu))
    kern.cpu_online(2)
    plat.run_until_idle(verify=True)
    assert runs == [2]


@pytest.mark.parametrize("groups,cpus,expected", [
    (4, 8, [{0, 1}, {2, 3}, {4, 5}, {6, 7}]),
    (3, 8, [{0, 1, 2}, {3, 4, 5}, {6, 7}]),
    (8, 4, [{0}, {1}, {2}, {3}, {0}, {1}, {2}, {3}]),
])
def test_vectors_are_spread_evenly(groups: int, cpus: int, expected: list[set[int]]) -> None:
    assert [set(g) for g in group_cpus_evenly(groups, list(range(cpus)))] == expected


def test_pre_and_post_vectors_are_not_managed() -> None:
    masks = irq_create_affinity_masks(6, IrqAffinity(pre_vectors=1, post_vectors=1),
                                      frozenset(range(4)), frozenset(range(4)))
    assert [m.is_managed for m in masks] == [False, True, True, True, True, False]
    assert [set(m.mask) for m in masks[1:5]] == [{0}, {1}, {2}, {3}]
