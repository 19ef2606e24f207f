"""Shared LPI infrastructure (R2): tables, per-CPU enable, configuration updates, kexec."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from directlpi import EventKind, Platform
from directlpi.hw.regs import LPI_CFG_ENABLE
from directlpi.kernel.context import Kind
from directlpi.kernel.irq.chip import IrqChip, irq_chip_eoi_parent
from directlpi.kernel.irq.desc import IRQ_HANDLED, IrqData
from directlpi.kernel.irq.domain import (
    DomainBusToken,
    Fwnode,
    IrqDomain,
    IrqDomainOps,
    IrqFwspec,
    irq_domain_alloc_irqs_parent,
    irq_domain_free_irqs_common,
    irq_domain_set_hwirq_and_chip,
)
from directlpi.kernel.irqchip.gic_v3 import GIC_IRQ_TYPE_LPI
from directlpi.kernel.kernel import Kernel
from tests.hw import arch
from tests.kernel.conftest import wired

DEV = "0000:00:01.0"


def rd_reg(plat: Platform, cpu: int, off: int, size: int = 4) -> int:
    return plat.bus.read(plat.gicr_base(cpu) + off, size)


@pytest.fixture
def lpi_kernel() -> tuple[Platform, Kernel]:
    plat = Platform.bare(cpus=4)
    return plat, plat.boot(lpis=True)


def test_every_rd_gets_the_tables_in_the_architectures_order(
        lpi_kernel: tuple[Platform, Kernel]) -> None:
    plat, kern = lpi_kernel
    props = {rd_reg(plat, c, arch.GICR_PROPBASER, 8) for c in range(4)}
    assert len(props) == 1                                  # one global property table
    prop = props.pop()
    assert prop & 0x1F == 15                                # 16 INTID bits (the cap)
    assert (prop >> 10) & 3 == 1                            # inner shareable
    pends = [rd_reg(plat, c, arch.GICR_PENDBASER, 8) & ((1 << 52) - (1 << 16)) for c in range(4)]
    assert len(set(pends)) == 4 and all(p % 0x10000 == 0 for p in pends)
    assert all(rd_reg(plat, c, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS for c in range(4))
    table = plat.memory.read(prop & ((1 << 52) - (1 << 12)), (1 << 16) - 8192)
    assert set(table) == {0xA2}                             # everything disabled
    assert "GICv3: LPIs: 16 INTID bits, 57344 LPIs" in kern.dmesg()


def test_programming_order_is_propbaser_pendbaser_then_enable() -> None:
    plat = Platform.bare(cpus=1)
    writes: list[int] = []
    base = plat.gicr_base(0)
    plat.observe(lambda e: writes.append(e.addr - base) if base <= e.addr < base + 0x100
                 else None, [EventKind.MMIO_WRITE])
    plat.boot(lpis=True)
    order = [w for w in writes if w in (arch.GICR_PROPBASER, arch.GICR_PENDBASER,
                                        arch.GICR_CTLR)]
    assert order == [arch.GICR_PROPBASER, arch.GICR_PENDBASER, arch.GICR_CTLR]


def test_lpis_stay_off_unless_firmware_or_the_command_line_asks() -> None:
    plat = Platform.bare(cpus=2)
    kern = plat.boot()
    assert not kern.lpis_enabled
    assert all(rd_reg(plat, c, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS == 0 for c in range(2))
    assert "not enabling LPIs" in kern.dmesg()


def test_no_plpis_means_no_lpis_but_spis_work() -> None:
    plat = Platform.bare(cpus=2, lpis=False)
    kern = plat.boot(lpis=True)
    assert not kern.lpis_enabled
    assert "GICD_TYPER.LPIS = 0" in kern.dmesg()
    from directlpi.kernel.errors import KernelError
    from directlpi.kernel.irqchip.gic_v3_lpi import LpiInfrastructure
    with pytest.raises(KernelError) as exc:                   # the per-CPU refusal
        LpiInfrastructure(kern, kern.gic).redist_disable_lpis(1)
    assert exc.value.errno == errno.ENXIO and "CPU1: LPIs not supported" in str(exc.value)
    w = wired(plat, kern, 40)
    w.dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert len(w.runs) == 1


def test_config_update_writes_the_table_then_invalidates_then_syncs(
        lpi_kernel: tuple[Platform, Kernel]) -> None:
    plat, kern = lpi_kernel
    seen: list[tuple[EventKind, int]] = []
    plat.observe(lambda e: seen.append((e.kind, e.cpu)),
                 [EventKind.INVALIDATE, EventKind.SYNC])
    assert kern.lpi is not None
    with kern.running_on(0, Kind.PROCESS):          # kernel code runs in a context
        kern.lpi.lpi_update_config((2,), 8200, 0, LPI_CFG_ENABLE)
    assert kern.lpi.lpi_config(8200) == 0xA3
    assert seen == [(EventKind.INVALIDATE, 2), (EventKind.SYNC, 2)]


class LpiConsumer:
    """The smallest LPI consumer of the shared infrastructure: a domain over the GIC
    whose INTIDs come from the global allocator and whose chip masks through the
    property table + INVLPIR on the target RD (what an MSI provider does)."""

    def __init__(self, kern: Kernel) -> None:
        assert kern.lpi is not None and kern.gic.domain is not None
        self.kern = kern
        self.lpi = kern.lpi
        self.target: dict[int, int] = {}
        self.chip = IrqChip(name="TEST-LPI", irq_mask=self.mask, irq_unmask=self.unmask,
                            irq_eoi=irq_chip_eoi_parent, irq_set_affinity=self.set_affinity)
        self.domain = kern.irq.create_domain(
            "TEST-LPI", Fwnode("test-lpi"), IrqDomainOps(alloc=self.alloc, free=self.free),
            parent=kern.gic.domain, bus_token=DomainBusToken.NEXUS)

    def alloc(self, domain: IrqDomain, virq: int, nr: int, arg: Any) -> None:
        base = self.lpi.alloc_lpis(nr) if arg is None else int(arg)
        fwspec = IrqFwspec(self.kern.board.gic.fwnode, (GIC_IRQ_TYPE_LPI, base, 1))
        irq_domain_alloc_irqs_parent(domain, virq, nr, fwspec)
        for i in range(nr):
            irq_domain_set_hwirq_and_chip(domain, virq + i, base + i, self.chip, self)
            self.target[base + i] = 0

    def free(self, domain: IrqDomain, virq: int, nr: int) -> None:
        irq_domain_free_irqs_common(domain, virq, nr)

    def mask(self, d: IrqData) -> None:
        self.lpi.lpi_update_config((self.target[d.hwirq],), d.hwirq, LPI_CFG_ENABLE, 0)

    def unmask(self, d: IrqData) -> None:
        self.lpi.lpi_update_config((self.target[d.hwirq],), d.hwirq, 0, LPI_CFG_ENABLE)

    def set_affinity(self, d: IrqData, mask: frozenset[int], force: bool) -> int:
        cpu = min(mask)
        self.target[d.hwirq] = cpu
        # The new RD may hold a stale copy of the configuration: invalidate it there.
        self.lpi.inv_lpi(cpu, d.hwirq)
        d.update_effective_affinity(frozenset((cpu,)))
        return 0

    def request(self, intid: int | None = None) -> tuple[int, int, list[int]]:
        """(virq, INTID, CPUs that ran the handler)."""
        virq = self.kern.irq_domain_alloc_irqs(self.domain, 1, intid)
        desc = self.kern.irq_to_desc(virq)
        assert desc is not None
        runs: list[int] = []
        self.kern.request_irq(virq, lambda i, d: runs.append(self.kern.this_cpu) or IRQ_HANDLED,
                              name="lpi")
        return virq, desc.irq_data.hwirq, runs


def test_an_lpi_consumer_built_on_the_infrastructure_delivers(
        lpi_kernel: tuple[Platform, Kernel]) -> None:
    plat, kern = lpi_kernel
    consumer = LpiConsumer(kern)
    virq, intid, runs = consumer.request()
    assert intid == 8192                                      # lowest free INTID
    kern.irq_set_affinity(virq, {3})
    plat.bus.write(plat.gicr_base(3) + arch.GICR_SETLPIR, intid, 4, master=DEV)
    plat.run_until_idle(verify=True)
    assert runs == [3]
    assert kern.lpi is not None and kern.lpi.allocator is not None
    assert kern.lpi.allocator.allocated_count == 1


def test_lpi_hwirqs_beyond_the_table_are_refused(lpi_kernel: tuple[Platform, Kernel]) -> None:
    _, kern = lpi_kernel
    from directlpi.kernel.errors import KernelError
    with pytest.raises(KernelError):
        kern.irq_create_fwspec_mapping(
            IrqFwspec(kern.board.gic.fwnode, (GIC_IRQ_TYPE_LPI, 1 << 17, 1)))


# -- kexec -----------------------------------------------------------------------------------------

def test_kexec_with_reserved_tables_reuses_them_and_inherits_pending_lpis() -> None:
    plat = Platform.bare(cpus=2)
    old = plat.boot(lpis=True)
    prop = rd_reg(plat, 0, arch.GICR_PROPBASER, 8)
    pend1 = rd_reg(plat, 1, arch.GICR_PENDBASER, 8)
    virq, intid, _ = LpiConsumer(old).request()
    old.irq_set_affinity(virq, {1})
    plat.cpu(1).write_sysreg("ICC_PMR_EL1", 0)              # CPU1 will not take it before kexec
    plat.bus.write(plat.gicr_base(1) + arch.GICR_SETLPIR, intid, 4, master=DEV)
    new = plat.kexec(reserve_tables=True)
    assert new is not old and new.lpis_enabled
    assert "GICv3: Using preallocated redistributor tables" in new.dmesg()
    assert rd_reg(plat, 0, arch.GICR_PROPBASER, 8) == prop
    assert rd_reg(plat, 1, arch.GICR_PENDBASER, 8) == pend1
    assert new.lpi is not None and new.lpi.lpi_config(intid) == 0xA2   # table reset
    plat.run_until_idle(verify=True)
    assert "Unexpected interrupt" not in new.dmesg()       # stale cached config was dropped
    # The new kernel's driver takes the same LPI and enables it: what the previous
    # kernel left pending on CPU1's RD is delivered.
    consumer = LpiConsumer(new)
    virq2 = new.irq_domain_alloc_irqs(consumer.domain, 1, intid)
    runs: list[int] = []
    new.irq_set_affinity(virq2, {1})
    new.request_irq(virq2, lambda i, d: runs.append(new.this_cpu) or IRQ_HANDLED, name="x")
    plat.run_until_idle(verify=True)
    assert runs == [1]


def test_kexec_without_reservation_fails_lpis_with_ebusy_but_spis_work() -> None:
    plat = Platform.bare(cpus=2)
    plat.boot(lpis=True)
    new = plat.kexec(reserve_tables=False)
    assert not new.lpis_enabled
    errors = [ln.text for ln in new.log.lines if ln.level == "err"]
    assert any("Failed to disable LPIs" in e and "[EBUSY]" in e for e in errors)
    w = wired(plat, new, 40)
    w.dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert len(w.runs) == 1


def test_kexec_without_reservation_on_a_clearable_gic_starts_over() -> None:
    plat = Platform.bare(cpus=2, lpis_clearable=True)
    plat.boot(lpis=True)
    new = plat.kexec(reserve_tables=False)
    assert new.lpis_enabled
    assert "GICv3: CPU0: Booted with LPIs enabled, memory probably corrupted" in \
        new.log.warnings()
    assert all(rd_reg(plat, c, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS for c in range(2))


def test_kexec_needs_a_running_kernel() -> None:
    from directlpi import DirectLPIError
    with pytest.raises(DirectLPIError, match="boot"):
        Platform.bare(cpus=1).kexec()


def test_handlers_receive_dev_id(lpi_kernel: tuple[Platform, Kernel]) -> None:
    plat, kern = lpi_kernel
    got: list[Any] = []
    dev = plat.add_wired_device("d", 50, level=False)
    virq = kern.gic_spi_mapping(50, dev.trigger)
    kern.request_irq(virq, lambda i, d: got.append(d) or IRQ_HANDLED, name="d", dev_id=dev)
    dev.raise_irq()
    plat.run_until_idle(verify=True)
    assert got == [dev]
