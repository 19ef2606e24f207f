"""The Direct LPI provider against the review's requirements R1..R11 (DESIGN.md)."""

from __future__ import annotations

import ast
import errno
from pathlib import Path
from typing import Any

import pytest

from directlpi import EventKind, Platform
from directlpi.kernel.errors import KernelError
from directlpi.kernel.fwdesc import BoardDescription, GicDescription
from directlpi.kernel.irq.chip import (
    IRQCHIP_STATE_ACTIVE,
    IRQCHIP_STATE_MASKED,
    IRQCHIP_STATE_PENDING,
)
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.irq.domain import DomainBusToken
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from tests.hw import arch

SETLPIR = 0x40


class Driver:
    """A PCI driver: allocates vectors and counts handler runs per CPU."""

    def __init__(self, plat: Platform, kern: Kernel, bdf: str, flags: int, nvec: int,
                 **fn: Any) -> None:
        self.plat, self.kern = plat, kern
        self.fn = plat.add_pci_device(bdf, **fn)
        n = kern.pci_alloc_irq_vectors(self.fn, 1, nvec, flags)
        self.virqs = [kern.pci_irq_vector(self.fn, i) for i in range(n)]
        self.runs: list[tuple[int, int]] = []
        for i, v in enumerate(self.virqs):
            kern.request_irq(v, self._handler(i), name=f"{bdf}-{i}", dev_id=i)

    def _handler(self, i: int) -> Any:
        def handler(irq: int, dev_id: Any) -> int:
            self.runs.append((i, self.kern.this_cpu))
            return IRQ_HANDLED
        return handler

    def intid(self, i: int) -> int:
        return self.kern.get_cached_msi_msg(self.virqs[i]).data

    def rd_of(self, i: int) -> int:
        addr = self.kern.get_cached_msi_msg(self.virqs[i]).address
        return next(c for c in range(self.plat.num_cpus)
                    if self.plat.gicr_base(c) + SETLPIR == addr)


@pytest.fixture
def dflt() -> tuple[Platform, Kernel]:
    plat = Platform.default(cpus=8)
    return plat, plat.boot()


# -- R1: one LPI namespace ----------------------------------------------------------------

def test_R1_msi_data_is_the_intid_from_one_global_namespace(dflt: Any) -> None:
    plat, kern = dflt
    a = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    b = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    intids = [d.intid(i) for d in (a, b) for i in range(4)]
    assert len(set(intids)) == 8 and all(i >= 8192 for i in intids)   # no per-device numbering
    for d in (a, b):
        for i, v in enumerate(d.virqs):
            desc = kern.irq_to_desc(v)
            assert desc is not None and desc.levels()[-1].hwirq == d.intid(i)


# -- R2: independent of the ITS ---------------------------------------------------------------

def test_R2_no_its_code_or_concept_in_the_provider() -> None:
    src = (Path(__file__).resolve().parents[2] / "src/directlpi/kernel/irqchip/direct_lpi.py")
    tree = ast.parse(src.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    banned = ("its", "device_id", "deviceid", "event", "collection", "itt", "col_map")
    assert not [n for n in names if any(b == n.lower() or n.lower().startswith(b + "_")
                                        for b in banned)]
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not [m for m in imports if m and "its" in m.split(".")[-1]]
    assert "directlpi.kernel.irqchip.lpi_range" in imports       # the shared allocator only


# -- R3: MultiMSI ---------------------------------------------------------------------------

def test_R3_multimsi_is_one_aligned_block_with_one_address(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    intids = [d.intid(i) for i in range(4)]
    assert intids == list(range(intids[0], intids[0] + 4)) and intids[0] % 4 == 0
    assert len({kern.get_cached_msi_msg(v).address for v in d.virqs}) == 1
    for i in range(4):
        d.fn.raise_msi(i)
    plat.run_until_idle(verify=True)
    assert sorted(d.runs) == [(i, 0) for i in range(4)]


def test_R3_three_vectors_reserve_a_block_of_four(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 3, msi_vectors=4)
    other = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert other.intid(0) != d.intid(0) + 3          # vector 3 of the block stays reserved


def test_R3_the_first_vector_moves_the_whole_block(dflt: Any) -> None:
    """Documented choice: affinity of a MultiMSI block is per block, set through its first
    vector; every member's requested and effective affinity follow."""
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    kern.irq_set_affinity(d.virqs[0], {5})
    assert [kern.irq_get_effective_affinity(v) for v in d.virqs] == [{5}] * 4
    assert [kern.irq_get_affinity(v) for v in d.virqs] == [{5}] * 4
    assert d.fn.msi_message(0)[0] == plat.gicr_base(5) + SETLPIR   # the device was rewritten
    for i in range(4):
        d.fn.raise_msi(i)
    plat.run_until_idle(verify=True)
    assert sorted(d.runs) == [(i, 5) for i in range(4)]


def test_R3_another_member_cannot_take_the_block_elsewhere(dflt: Any) -> None:
    """Item 7: asking vector 2 for a CPU the block does not target is refused (EINVAL,
    naming the first vector); a mask that contains the block's target is accepted."""
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    with pytest.raises(KernelError) as exc:
        kern.irq_set_affinity(d.virqs[2], {5})
    assert exc.value.errno == errno.EINVAL and f"IRQ {d.virqs[0]}" in str(exc.value)
    assert [kern.irq_get_effective_affinity(v) for v in d.virqs] == [{0}] * 4
    assert d.fn.msi_message(0)[0] == plat.gicr_base(0) + SETLPIR       # nothing moved
    kern.irq_set_affinity(d.virqs[2], {0, 5})
    assert kern.irq_get_effective_affinity(d.virqs[2]) == {0}


def test_R3_only_the_first_vector_writes_the_msi_capability(dflt: Any) -> None:
    """Item 8: as Linux's pci_msi_domain_write_msg, the capability is written for the
    block's first vector only (activating the other three writes nothing to it), and a
    move through the first vector is what reaches the device."""
    plat, kern = dflt
    fn = plat.add_pci_device("0000:00:01.0", msi_vectors=4)
    assert plat.pci_host is not None
    address_reg = plat.pci_host.ecam_address(fn.bdf) + 0x50 + 0x04      # MSI Message Address
    writes: list[int] = []
    plat.observe(lambda e: writes.append(e.addr), [EventKind.MMIO_WRITE])
    kern.pci_alloc_irq_vectors(fn, 4, 4, PCI_IRQ_MSI)
    assert writes.count(address_reg) == 1
    writes.clear()
    kern.irq_set_affinity(kern.pci_irq_vector(fn, 0), {3})
    assert writes.count(address_reg) == 1
    assert fn.msi_message(2) == (plat.gicr_base(3) + SETLPIR,
                                 kern.get_cached_msi_msg(kern.pci_irq_vector(fn, 2)).data)


# -- R4: pending state is real -----------------------------------------------------------------

def test_R4_set_pending_writes_setlpir_and_clear_writes_clrlpir(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    kern.irq_set_affinity(d.virqs[1], {3})
    seen: list[tuple[EventKind, int, str]] = []
    plat.observe(lambda e: seen.append((e.kind, e.cpu, e.register or e.reason)),
                 [EventKind.LPI_PENDING, EventKind.LPI_CLEARED])
    kern.irq_set_irqchip_state(d.virqs[1], IRQCHIP_STATE_PENDING, True)
    assert seen == [(EventKind.LPI_PENDING, 3, "setlpir")]
    plat.run_until_idle(verify=True)
    assert d.runs == [(1, 3)]
    kern.mask_irq(d.virqs[1])
    d.fn.raise_msi(1)                                  # masked at the device: held there
    kern.irq_set_irqchip_state(d.virqs[1], IRQCHIP_STATE_PENDING, True)
    kern.irq_set_irqchip_state(d.virqs[1], IRQCHIP_STATE_PENDING, False)
    assert seen[-1] == (EventKind.LPI_CLEARED, 3, "GICR_CLRLPIR")


def test_R4_retrigger_really_re_raises(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.irq_inject_interrupt(d.virqs[0])
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 0)]


def test_R4_lazy_disable_resends_through_setlpir(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.disable_irq(d.virqs[0])
    d.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert d.runs == []
    kern.enable_irq(d.virqs[0])
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 0)]


def test_R4_get_state_does_only_what_the_architecture_allows(dflt: Any) -> None:
    """Decision: no register reads an LPI's pending bit while LPIs are enabled, so PENDING
    is refused (EINVAL); ACTIVE is always false (LPIs have no active state); MASKED is the
    property table's Enable bit."""
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    with pytest.raises(KernelError) as exc:
        kern.irq_get_irqchip_state(d.virqs[0], IRQCHIP_STATE_PENDING)
    assert exc.value.errno == errno.EINVAL and "no register" in str(exc.value)
    assert kern.irq_get_irqchip_state(d.virqs[0], IRQCHIP_STATE_ACTIVE) is False
    assert kern.irq_get_irqchip_state(d.virqs[0], IRQCHIP_STATE_MASKED) is False
    kern.mask_irq(d.virqs[0])
    assert kern.irq_get_irqchip_state(d.virqs[0], IRQCHIP_STATE_MASKED) is True


# -- R5: no vCPU affinity ------------------------------------------------------------------------

def test_R5_no_vcpu_affinity_callback_anywhere(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    desc = kern.irq_to_desc(d.virqs[0])
    assert desc is not None
    assert all(lvl.chip is not None and lvl.chip.irq_set_vcpu_affinity is None
               for lvl in desc.levels())


# -- R6: no false isolation claim -------------------------------------------------------------

def test_R6_no_isolation_no_assignment_and_spoofing_is_reported(dflt: Any) -> None:
    plat, kern = dflt
    victim = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    attacker = plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    assert kern.msi_isolated(victim.fn) is False
    assert kern.direct_lpi is not None
    assert all(not dom.flags & (1 << 5) for dom in kern.direct_lpi.pci.domain.hierarchy())
    with pytest.raises(KernelError) as exc:
        kern.vfio_assign(attacker)
    assert exc.value.errno == errno.EPERM and "allow_unsafe_interrupts" in str(exc.value)
    kern.vfio_assign(attacker, allow_unsafe_interrupts=True)
    assert any("unsafe interrupts" in w for w in kern.log.warnings())
    msg = kern.get_cached_msi_msg(victim.virqs[0])
    attacker.spoof_msi(msg.address, msg.data)           # the hole: it works ...
    plat.run_until_idle(verify=True)
    assert victim.runs == [(0, 0)]
    (spoof,) = plat.spoofed_msis                        # ... and the platform sees it
    assert (spoof.master, spoof.data, spoof.target_cpu) == ("0000:00:02.0", msg.data, 0)
    victim.fn.raise_msi(0)                              # a genuine MSI is not reported
    assert len(plat.spoofed_msis) == 1


# -- R7: firmware must say so ------------------------------------------------------------------

def _board_without_direct_lpi(plat: Platform) -> BoardDescription:
    g = plat.board.gic
    gic = GicDescription(dist_base=g.dist_base, redist_regions=g.redist_regions,
                         msi_controller=True, mbi_ranges=g.mbi_ranges, direct_lpi=False,
                         fwnode=g.fwnode, direct_lpi_fwnode=g.direct_lpi_fwnode)
    return BoardDescription(cpus=plat.board.cpus, memory=plat.board.memory, gic=gic,
                            pci_hosts=plat.board.pci_hosts)


def test_R7_no_firmware_description_no_direct_lpi_even_without_an_its() -> None:
    plat = Platform.default(cpus=4)
    plat.board = _board_without_direct_lpi(plat)
    fn = plat.add_pci_device("0000:00:01.0", msix_vectors=2)
    kern = plat.boot()
    assert kern.direct_lpi is None and kern.msi_provider == "mbi"     # MBIs still offered
    assert len(kern.log.grep("Direct LPI not described by firmware")) == 1
    assert kern.irq.irq_find_matching_fwnode(plat.board.gic.direct_lpi_fwnode,
                                             DomainBusToken.PCI_MSI) is None
    with pytest.raises(KernelError) as exc:
        kern.pci_alloc_irq_vectors(fn, 1, 2, PCI_IRQ_MSIX)
    assert exc.value.errno == errno.ENOSPC
    assert all(plat.bus.read(plat.gicr_base(c) + arch.GICR_CTLR, 4) & 1 == 0 for c in range(4))


# -- R8: all RDs reachable, and all must have DirectLPI ----------------------------------------

def test_R8_one_rd_without_directlpi_means_no_direct_lpi() -> None:
    plat = Platform.default(cpus=4, direct_lpi=[True, True, False, True])
    kern = plat.boot()
    assert kern.direct_lpi is None
    (line,) = kern.log.grep("not every redistributor")
    assert "GICR_TYPER.DirectLPI" in line


def test_R8_a_device_reaches_every_rd(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    for cpu in range(8):
        kern.irq_set_affinity(d.virqs[0], {cpu})
        d.fn.raise_msi(0)
        plat.run_until_idle(verify=True)
    assert [c for _, c in d.runs] == list(range(8))


# -- R9: first online CPU of the mask ----------------------------------------------------------

def test_R9_target_is_the_first_online_cpu_of_the_mask(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 3, msix_vectors=3)
    assert [kern.irq_get_effective_affinity(v) for v in d.virqs] == [{0}] * 3   # no balancing
    kern.cpu_offline(2)
    kern.irq_set_affinity(d.virqs[0], {7, 2, 5})
    assert kern.irq_get_effective_affinity(d.virqs[0]) == {5}


# -- R10: shaped like MBI, message = RD + GICR_SETLPIR, data = INTID ----------------------------

def test_R10_domains_and_message(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    desc = kern.irq_to_desc(d.virqs[0])
    assert desc is not None
    assert [(lvl.domain.name, lvl.domain.bus_token) for lvl in desc.levels()
            if lvl.domain is not None] == [
        ("DLPI-PCI-MSI", DomainBusToken.PCI_MSI), ("DirectLPI", DomainBusToken.NEXUS),
        ("GICv3", DomainBusToken.WIRED)]
    assert kern.direct_lpi is not None
    assert kern.direct_lpi.platform.domain.parent is kern.direct_lpi.nexus
    kern.irq_set_affinity(d.virqs[0], {6})
    msg = kern.get_cached_msi_msg(d.virqs[0])
    assert msg.address == plat.gicr_base(6) + 0x40 and msg.data == d.intid(0)
    assert d.fn.msi_message(0) == (msg.address, msg.data)           # re-composed and rewritten


# -- R11: hardware rules --------------------------------------------------------------------------

def test_R11_config_change_is_table_then_invlpir_then_syncr(dflt: Any) -> None:
    """The property byte first, then GICR_INVLPIR and GICR_SYNCR on every RD that may
    cache it: each RD the LPI has targeted (its activation RD, CPU0, and CPU4 since)."""
    plat, kern = dflt
    fn = plat.add_pci_device("0000:00:01.0", msix_vectors=1)
    kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSIX)
    virq = kern.pci_irq_vector(fn, 0)
    intid = kern.get_cached_msi_msg(virq).data
    kern.irq_set_affinity(virq, {4})                  # activated at allocation: moves now
    seen: list[tuple[EventKind, int]] = []
    plat.observe(lambda e: seen.append((e.kind, e.cpu)), [EventKind.INVALIDATE, EventKind.SYNC])
    kern.request_irq(virq, lambda i, dv: IRQ_HANDLED, name="x")
    assert kern.lpi is not None and kern.lpi.lpi_config(intid) & 1
    assert seen == [(EventKind.INVALIDATE, 0), (EventKind.SYNC, 0),
                    (EventKind.INVALIDATE, 4), (EventKind.SYNC, 4)]
    for op, enabled in ((kern.mask_irq, 0), (kern.unmask_irq, 1)):
        seen.clear()
        op(virq)
        assert kern.lpi.lpi_config(intid) & 1 == enabled              # the table first,
        assert seen == [(EventKind.INVALIDATE, 0), (EventKind.SYNC, 0),   # then INVLPIR,
                        (EventKind.INVALIDATE, 4), (EventKind.SYNC, 4)]   # SYNCR on each


def test_R11_plain_msi_only_gets_intids_below_65536() -> None:
    """Every INTID below 65,536 taken: a plain-MSI function (16-bit data) gets ENOSPC
    although INTIDs above are free -- an MSI-X function gets one of those.  (Without the
    limit the allocation would succeed and the 16-bit Message Data write fail: EINVAL.)"""
    plat = Platform.default(cpus=2, lpi_id_bits=17)
    kern = plat.boot(lpi_id_bits=17)
    assert kern.lpi is not None and kern.lpi.allocator is not None
    for size in (8192, 16384, 32768):             # 8192..65535 all taken
        kern.lpi.alloc_lpis(size)
    assert kern.lpi.allocator.free_ranges() == [(65536, 131072)]
    fn = plat.add_pci_device("0000:00:01.0", msi_vectors=1)
    with pytest.raises(KernelError) as exc:
        kern.pci_alloc_irq_vectors(fn, 1, 1, PCI_IRQ_MSI)
    assert exc.value.errno == errno.ENOSPC
    msix = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert msix.intid(0) >= 65536


def test_R11_32_bit_function_only_targets_rds_below_4_gib() -> None:
    plat = Platform.default(cpus=200)
    kern = plat.boot()
    d = Driver(plat, kern, "0000:00:03.0", PCI_IRQ_MSI, 1, msi_vectors=1, msi_64bit=False)
    assert plat.gicr_base(150) >= 1 << 32
    with pytest.raises(KernelError) as exc:
        kern.irq_set_affinity(d.virqs[0], {150, 160})
    assert exc.value.errno == errno.ENOSPC and "32-bit MSI addressing" in str(exc.value)
    kern.irq_set_affinity(d.virqs[0], {150, 7})           # a reachable CPU in the mask
    assert kern.irq_get_effective_affinity(d.virqs[0]) == {7}
    wide = Driver(plat, kern, "0000:00:04.0", PCI_IRQ_MSI, 1, msi_vectors=1)
    kern.irq_set_affinity(wide.virqs[0], {150})
    assert wide.fn.msi_message(0)[0] == plat.gicr_base(150) + 0x40


# -- moves carry pending state, without creating interrupts ------------------------------------

def test_a_pending_lpi_is_delivered_once_by_its_old_rd_after_a_move(dflt: Any) -> None:
    """Item 1: a move only re-targets the device.  The LPI already pending on the old RD
    stays there, enabled, and the old CPU takes it once -- no probe, no carry, and no
    access to another PE's system registers (the hardware would refuse it)."""
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.irq_set_affinity(d.virqs[0], {2})
    plat.cpu(2).write_sysreg("ICC_PMR_EL1", 0)         # CPU2 does not take it yet
    d.fn.raise_msi(0)
    loads: list[int] = []
    plat.observe(lambda e: loads.append(e.value), [EventKind.CONFIG_LOAD])
    kern.irq_set_affinity(d.virqs[0], {6})
    assert all(v >> 2 for v in loads)                  # no transient priority-0 byte
    assert plat.event_count(EventKind.BAD_ACCESS) == 0
    plat.cpu(2).write_sysreg("ICC_PMR_EL1", 0xF0)
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 2)]                          # once, by the RD it was pending on
    d.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 2), (0, 6)]                  # and the next one on the new CPU


def test_a_move_without_anything_pending_creates_no_interrupt(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    for cpu in (3, 5, 1, 7):
        kern.irq_set_affinity(d.virqs[0], {cpu})
    kern.cpu_offline(7)
    plat.run_until_idle(verify=True)
    assert d.runs == []


def test_offlining_a_cpu_carries_its_pending_lpis(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    kern.irq_set_affinity(d.virqs[0], {4, 5})
    for i in range(4):
        d.fn.raise_msi(i)                              # pending on CPU4's RD
    kern.cpu_offline(4)
    plat.run_until_idle(verify=True)
    assert sorted(d.runs) == [(i, 5) for i in range(4)]


def test_freed_vectors_leave_nothing_pending_for_the_next_owner(dflt: Any) -> None:
    plat, kern = dflt
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    intid = d.intid(0)
    kern.mask_irq(d.virqs[0])
    plat.bus.write(plat.gicr_base(0) + SETLPIR, intid, 4, master="0000:00:01.0")
    kern.free_irq(d.virqs[0], 0)
    kern.pci_free_irq_vectors(d.fn)
    nxt = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert nxt.intid(0) == intid
    plat.run_until_idle(verify=True)
    assert nxt.runs == []
