"""The MBI provider: MSIs written to GICD_SETSPI_NSR, from the SPIs of ``mbi-ranges``."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from directlpi import Platform
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.hw.events import EventKind
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.chip import IRQCHIP_STATE_PENDING
from directlpi.kernel.irqchip.gic_v3_mbi import MbiAllocator
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from tests.hw import arch
from tests.kernel.drivers import Driver

SETSPI_NSR = 0x40
MBI_ONLY = BOARDS_DIR / "mbi-only.dts"


@pytest.fixture
def mbi() -> tuple[Platform, Kernel]:
    plat = Platform.from_devicetree(MBI_ONLY)
    return plat, plat.boot()


def test_the_message_is_the_distributor_doorbell_and_the_spi(mbi: Any) -> None:
    plat, kern = mbi
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    msgs = [kern.get_cached_msi_msg(v) for v in d.virqs]
    assert {m.address for m in msgs} == {plat.gicd_base + SETSPI_NSR}
    assert [m.data for m in msgs] == [256, 257, 258, 259]
    assert [d.fn.msi_message(i) for i in range(4)] == [(m.address, m.data) for m in msgs]
    assert kern.log.grep("GICv3: MBI range [256:383]")
    # configured edge-triggered in GICD_ICFGR (bit 2n+1 of ICFGR<n/16>)
    cfg = plat.bus.read(plat.gicd_base + arch.GICD_ICFGR + 4 * (256 // 16), 4)
    assert all(cfg >> (2 * (i % 16) + 1) & 1 for i in range(256, 260))


def test_an_mbi_is_handled_on_the_cpu_its_affinity_names(mbi: Any) -> None:
    plat, kern = mbi
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    before = d.fn.msi_message(0)
    kern.irq_set_affinity(d.virqs[0], {6})
    assert d.fn.msi_message(0) == before                # the device is not rewritten
    assert kern.irq_get_effective_affinity(d.virqs[0]) == {6}
    d.fn.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 6)]


def test_multimsi_blocks_are_aligned_spi_numbers(mbi: Any) -> None:
    plat, kern = mbi
    one = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 1, msi_vectors=1)
    four = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    base = kern.get_cached_msi_msg(four.virqs[0]).data
    assert kern.get_cached_msi_msg(one.virqs[0]).data == 256 and base == 260
    four.fn.raise_msi(3)
    plat.run_until_idle(verify=True)
    assert four.runs == [(3, 0)]


def test_masked_mbis_stay_pending_until_unmasked(mbi: Any) -> None:
    plat, kern = mbi
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    kern.mask_irq(d.virqs[0])
    assert d.fn.raise_msi(0) is False                    # the function holds it (PBA)
    kern.unmask_irq(d.virqs[0])
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 0)]
    kern.irq_set_irqchip_state(d.virqs[0], IRQCHIP_STATE_PENDING, True)
    assert kern.irq_get_irqchip_state(d.virqs[0], IRQCHIP_STATE_PENDING) is True
    plat.run_until_idle(verify=True)
    assert d.runs == [(0, 0), (0, 0)]


def test_freed_spis_are_reused_and_exhaustion_is_enospc(mbi: Any) -> None:
    plat, kern = mbi
    big = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 128, msix_vectors=128)
    assert sorted(kern.get_cached_msi_msg(v).data for v in big.virqs) == list(range(256, 384))
    late = plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    kern.pci.scan()
    with pytest.raises(KernelError) as exc:
        kern.pci_alloc_irq_vectors(late, 1, 1, PCI_IRQ_MSIX)
    assert exc.value.errno == errno.ENOSPC and "MBI ranges" in str(exc.value)
    for v in big.virqs:
        kern.free_irq(v)
    kern.pci_free_irq_vectors(big.fn)
    assert kern.mbi is not None and kern.mbi.allocator.allocated() == []
    assert kern.pci_alloc_irq_vectors(late, 1, 1, PCI_IRQ_MSIX) == 1


def test_mbis_are_not_isolated_and_a_spoofed_spi_is_reported(mbi: Any) -> None:
    plat, kern = mbi
    victim = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    attacker = plat.add_pci_device("0000:00:02.0", msix_vectors=1)
    assert kern.msi_isolated(victim.fn) is False
    address, data = victim.fn.msi_message(0)
    attacker.spoof_msi(address, data)
    plat.run_until_idle(verify=True)
    assert victim.runs == [(0, 0)]                       # the victim's handler ran
    (spoof,) = plat.spoofed_msis
    assert (spoof.master, spoof.address, spoof.data, spoof.target_cpu) == (
        "0000:00:02.0", plat.gicd_base + SETSPI_NSR, data, -1)


def test_firmware_mbis_without_gicd_typer_mbis_are_refused() -> None:
    plat = Platform.from_devicetree(MBI_ONLY, mbis=False)
    kern = plat.boot()
    assert kern.mbi is None and kern.msi_provider == "none"
    (line,) = kern.log.grep("GICD_TYPER.MBIS is 0")
    assert "not used as an MSI provider" in line


def test_mbi_ranges_beyond_the_implemented_spis_are_refused() -> None:
    plat = Platform.from_devicetree(MBI_ONLY, spis=192)     # SPIs 32..223
    kern = plat.boot()
    assert kern.mbi is None
    assert kern.log.grep("lie outside the implemented SPIs 32..223")


def test_icpendr_clearing_a_pending_spi_is_an_event() -> None:
    plat = Platform.bare(cpus=1)
    seen: list[tuple[int, str]] = []
    plat.observe(lambda ev: seen.append((ev.intid, ev.reason)), [EventKind.SPI_CLEARED])
    plat.bus.write(plat.gicd_base + SETSPI_NSR, 300, 4)
    plat.bus.write(plat.gicd_base + arch.GICD_ICPENDR + 4 * (300 // 32), 1 << (300 % 32), 4)
    plat.bus.write(plat.gicd_base + arch.GICD_ICPENDR + 4 * (300 // 32), 1 << (300 % 32), 4)
    assert seen == [(300, "icpendr")]                    # once: it was pending only once


# -- the allocator, against a reference model --------------------------------------------------

RANGES = ((256, 128), (400, 40), (35, 13))       # aligned, unaligned end, unaligned start


class MbiAllocatorMachine(RuleBasedStateMachine):
    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.alloc = MbiAllocator(RANGES)
        self.owned: dict[int, int] = {}

    @rule(target=blocks, nr=st.sampled_from([1, 1, 2, 3, 4, 8, 16, 32, 64]))
    def allocate(self, nr: int) -> tuple[int, int]:
        size = 1 << (nr - 1).bit_length()
        try:
            first = self.alloc.alloc(nr)
        except KernelError as exc:
            assert exc.errno == errno.ENOSPC
            taken = [(b, b + s) for b, s in self.owned.items()]
            for lo, n in RANGES:            # no aligned free block anywhere
                for cand in range(-(-lo // size) * size, lo + n - size + 1, size):
                    assert any(a < cand + size and cand < b for a, b in taken)
            return (-1, 0)
        assert first % size == 0, "MultiMSI needs the SPI INTID itself aligned"
        assert any(lo <= first and first + size <= lo + n for lo, n in RANGES)
        assert all(first + size <= b or b + s <= first for b, s in self.owned.items())
        self.owned[first] = size
        return (first, size)

    @rule(block=consumes(blocks))
    def release(self, block: tuple[int, int]) -> None:
        first, size = block
        if first < 0:
            return
        self.alloc.free(first, size)
        del self.owned[first]

    @rule(intid=st.integers(0, 600))
    def free_what_is_not_allocated_is_refused(self, intid: int) -> None:
        if any(b <= intid < b + s for b, s in self.owned.items()):
            return
        with pytest.raises(KernelError):
            self.alloc.free(intid, 1)

    @invariant()
    def the_bitmap_is_what_was_handed_out(self) -> None:
        assert sorted(self.alloc.allocated()) == sorted(
            i for b, s in self.owned.items() for i in range(b, b + s))


TestMbiAllocator = MbiAllocatorMachine.TestCase


def test_a_pending_mbi_does_not_reach_the_spis_next_owner(mbi: Any) -> None:
    """Found by the MBI state machine: an MBI latched in the distributor when its vector
    was freed fired on the next owner of the SPI.  Freeing discards it (GICD_ICPENDR)."""
    plat, kern = mbi
    old = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    spi = kern.get_cached_msi_msg(old.virqs[0]).data
    old.fn.raise_msi(0)                                   # latched, not yet taken
    kern.free_irq(old.virqs[0])
    kern.pci_free_irq_vectors(old.fn)
    new = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert kern.get_cached_msi_msg(new.virqs[0]).data == spi
    plat.run_until_idle(verify=True)
    assert new.runs == [] and old.runs == []


def test_a_stray_mbi_of_a_free_spi_does_not_reach_its_next_owner(mbi: Any) -> None:
    """Found by the whole-stack hunt: an unknown bus master latches a free MBI SPI (edge,
    as its previous owner left it) through GICD_SETSPI_NSR; allocation clears it before
    the SPI's new owner enables it."""
    plat, kern = mbi
    first = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    spi = kern.get_cached_msi_msg(first.virqs[0]).data
    kern.free_irq(first.virqs[0])
    kern.pci_free_irq_vectors(first.fn)
    plat.bus.write(plat.gicd_base + 0x40, spi, 4, master="0000:00:1f.7")
    new = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert kern.get_cached_msi_msg(new.virqs[0]).data == spi
    plat.run_until_idle(verify=True)
    assert new.runs == []
