"""Hierarchical irq domains: allocation through levels, rollback, activation, parent helpers."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from directlpi import Platform
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import (
    IRQCHIP_STATE_PENDING,
    IrqChip,
    irq_chip_eoi_parent,
    irq_chip_mask_parent,
    irq_chip_set_affinity_parent,
    irq_chip_unmask_parent,
)
from directlpi.kernel.irq.desc import IRQ_HANDLED, IRQ_TYPE_EDGE_RISING, IrqData
from directlpi.kernel.irq.domain import (
    DomainBusToken,
    Fwnode,
    IrqDomain,
    IrqDomainOps,
    IrqFwspec,
    irq_domain_alloc_irqs_parent,
    irq_domain_free_irqs_common,
    irq_domain_free_irqs_parent,
    irq_domain_set_hwirq_and_chip,
)
from directlpi.kernel.kernel import Kernel
from tests.hw import arch
from tests.kernel.conftest import spi_bit


class ChildDomain:
    """A stacked domain over the GIC: child hwirq n is SPI base + n, edge."""

    def __init__(self, kern: Kernel, base: int, *, fail_after_parent: bool = False,
                 calls: list[str] | None = None) -> None:
        self.kern = kern
        self.base = base
        self.fail_after_parent = fail_after_parent
        self.calls = calls if calls is not None else []
        self.chip = IrqChip(name="CHILD", irq_mask=irq_chip_mask_parent,
                            irq_unmask=irq_chip_unmask_parent, irq_eoi=irq_chip_eoi_parent,
                            irq_set_affinity=irq_chip_set_affinity_parent)
        gic = kern.gic.domain
        assert gic is not None
        self.domain = kern.irq.create_domain(
            "CHILD", Fwnode("child"),
            IrqDomainOps(alloc=self.alloc, free=self.free, activate=self.activate,
                         deactivate=self.deactivate),
            parent=gic, bus_token=DomainBusToken.NEXUS)

    def alloc(self, domain: IrqDomain, virq: int, nr: int, arg: Any) -> None:
        hwirq = int(arg)
        fwspec = IrqFwspec(self.kern.board.gic.fwnode, (0, self.base + hwirq - 32, 1))
        irq_domain_alloc_irqs_parent(domain, virq, nr, fwspec)
        if self.fail_after_parent:
            irq_domain_free_irqs_parent(domain, virq, nr)
            raise KernelError("child refuses", errno.ENOSPC)
        for i in range(nr):
            d = irq_domain_set_hwirq_and_chip(domain, virq + i, hwirq + i, self.chip, self)
            # As GICv3-MBI does: the specifier did not come from firmware, so set the
            # parent's trigger explicitly.
            parent = d.parent_data
            assert parent is not None and parent.chip is not None
            assert parent.chip.irq_set_type is not None
            parent.chip.irq_set_type(parent, IRQ_TYPE_EDGE_RISING)
            d.set_trigger_type(IRQ_TYPE_EDGE_RISING)

    def free(self, domain: IrqDomain, virq: int, nr: int) -> None:
        self.calls.append("free")
        irq_domain_free_irqs_common(domain, virq, nr)

    def activate(self, domain: IrqDomain, d: IrqData, reserve: bool) -> None:
        self.calls.append(f"activate:{d.hwirq}")

    def deactivate(self, domain: IrqDomain, d: IrqData) -> None:
        self.calls.append(f"deactivate:{d.hwirq}")


def test_allocation_builds_one_level_per_domain(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    child = ChildDomain(kern, 100)
    virq = kern.irq_domain_alloc_irqs(child.domain, 4, 8)
    for i in range(4):
        desc = kern.irq_to_desc(virq + i)
        assert desc is not None
        levels = desc.levels()
        assert [d.domain.name for d in levels if d.domain] == ["CHILD", "GICv3"]
        assert [d.hwirq for d in levels] == [8 + i, 108 + i]
        assert child.domain.revmap[8 + i] == virq + i
        assert kern.gic.domain is not None and kern.gic.domain.revmap[108 + i] == virq + i
    kern.irq.irq_domain_free_irqs(virq, 4)
    assert kern.irq_to_desc(virq) is None
    assert not child.domain.revmap
    assert kern.gic.domain is not None and 108 not in kern.gic.domain.revmap


def test_failed_allocation_leaves_nothing_behind(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    child = ChildDomain(kern, 100, fail_after_parent=True)
    before = set(kern.irq.descs)
    with pytest.raises(KernelError) as exc:
        kern.irq_domain_alloc_irqs(child.domain, 2, 0)
    assert exc.value.errno == errno.ENOSPC
    assert set(kern.irq.descs) == before
    assert not child.domain.revmap
    assert kern.gic.domain is not None and 100 not in kern.gic.domain.revmap
    ok = ChildDomain(kern, 200)
    virq = kern.irq_domain_alloc_irqs(ok.domain, 2, 0)
    assert virq == min(set(range(1, 100)) - before)          # the numbers were given back


def test_activation_is_parent_first_deactivation_child_first(
        booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    calls: list[str] = []
    child = ChildDomain(kern, 120, calls=calls)
    virq = kern.irq_domain_alloc_irqs(child.domain, 1, 3)
    kern.request_irq(virq, lambda i, d: IRQ_HANDLED, name="child")
    kern.free_irq(virq)
    assert calls == ["activate:3", "deactivate:3"]
    assert not spi_bit(plat, arch.GICD_ISENABLER, 123)


def test_parent_helpers_reach_the_gic(booted: tuple[Platform, Kernel]) -> None:
    plat, kern = booted
    child = ChildDomain(kern, 130)
    virq = kern.irq_domain_alloc_irqs(child.domain, 1, 0)
    runs: list[int] = []
    kern.request_irq(virq, lambda i, d: runs.append(kern.this_cpu) or IRQ_HANDLED, name="c")
    assert spi_bit(plat, arch.GICD_ISENABLER, 130)            # unmask went to the GIC
    kern.irq_set_affinity(virq, {2})
    assert kern.irq_get_effective_affinity(virq) == {2}
    kern.irq_set_irqchip_state(virq, IRQCHIP_STATE_PENDING, True)   # walks down to the GIC
    plat.run_until_idle(verify=True)
    assert runs == [2]
    kern.disable_irq(virq)
    kern.irq_set_irqchip_state(virq, IRQCHIP_STATE_PENDING, True)
    plat.run_until_idle(verify=True)
    assert not spi_bit(plat, arch.GICD_ISENABLER, 130)        # lazily masked via the parent
    kern.enable_irq(virq)
    plat.run_until_idle(verify=True)
    assert runs == [2, 2]


def test_find_matching_fwnode_by_bus_token(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    child = ChildDomain(kern, 140)
    fw = child.domain.fwnode
    assert kern.irq.irq_find_matching_fwnode(fw, DomainBusToken.NEXUS) is child.domain
    assert kern.irq.irq_find_matching_fwnode(fw, DomainBusToken.ANY) is child.domain
    assert kern.irq.irq_find_matching_fwnode(fw, DomainBusToken.PCI_MSI) is None
    assert kern.irq.irq_find_matching_fwnode(kern.board.gic.fwnode,
                                             DomainBusToken.WIRED) is kern.gic.domain


@pytest.mark.parametrize("params,err", [
    ((0, 1000, 4), errno.EINVAL),           # SPI 1032 does not exist
    ((2, 0, 4), errno.EINVAL),              # no extended SPI range
    ((0xA110C8ED, 8192, 1), errno.EPERM),   # an LPI while LPIs are off
    ((5, 4), errno.EINVAL),                 # raw INTID 5 is an SGI
    ((1,), errno.EINVAL),                   # one cell
])
def test_bad_specifiers_are_refused(booted: tuple[Platform, Kernel], params: tuple[int, ...],
                                    err: int) -> None:
    _, kern = booted
    with pytest.raises(KernelError) as exc:
        kern.irq_create_fwspec_mapping(IrqFwspec(kern.board.gic.fwnode, params))
    assert exc.value.errno == err


def test_same_specifier_maps_to_the_same_virq(booted: tuple[Platform, Kernel]) -> None:
    _, kern = booted
    a = kern.gic_spi_mapping(70, 4)
    b = kern.gic_spi_mapping(70, 4)
    assert a == b
    kern.irq.irq_dispose_mapping(a)
    assert kern.irq_to_desc(a) is None
