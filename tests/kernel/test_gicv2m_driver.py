"""The GICv2m MSI provider (kernel/irqchip/gic_v2m.py): SPIs from MSI frames.

Observable outcomes: the message (frame + MSI_SETSPI_NS, SPI INTID), handler runs and
where, the distributor's configuration, what the kernel refuses and logs.
"""

from __future__ import annotations

from typing import Any

import pytest

from directlpi import Platform
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.hw.events import Event, EventKind
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from tests.hw import arch
from tests.kernel.drivers import Driver

V2M_BOARD = BOARDS_DIR / "gicv2m.dts"
FRAME = 0x0802_0000
SETSPI = FRAME + 0x40


@pytest.fixture
def v2m() -> tuple[Platform, Kernel]:
    plat = Platform.from_devicetree(V2M_BOARD)
    return plat, plat.boot()


def test_the_kernel_probes_the_frame_from_msi_typer(v2m: Any) -> None:
    plat, kern = v2m
    assert kern.msi_provider == "gicv2m"
    assert kern.lpi is None                               # GICD_TYPER.LPIS = 0
    [frame] = kern.v2m.frames
    hw = plat.machine.v2m[0]
    assert (frame.base, frame.spi_start, frame.nr_spis) == (FRAME, hw.spi_base, hw.spi_count)
    assert kern.log.grep(f"GICv2m: range[{FRAME:#x}:{FRAME + 0xFFF:#x}]")


def test_the_message_is_the_frame_doorbell_and_the_spi(v2m: Any) -> None:
    plat, kern = v2m
    first = plat.machine.v2m[0].spi_base
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 4, msix_vectors=4)
    msgs = [kern.get_cached_msi_msg(v) for v in d.virqs]
    assert {m.address for m in msgs} == {SETSPI}
    assert [m.data for m in msgs] == list(range(first, first + 4))
    cfg = plat.bus.read(plat.gicd_base + arch.GICD_ICFGR + 4 * (first // 16), 4)
    assert all(cfg >> (2 * (i % 16) + 1) & 1 for i in range(first, first + 4))  # edge


def test_an_msi_is_handled_and_a_move_leaves_the_device_alone(v2m: Any) -> None:
    plat, kern = v2m
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 2, msix_vectors=2)
    before = d.fn.msi_message(1)
    kern.irq_set_affinity(d.virqs[1], {6})
    assert d.fn.msi_message(1) == before
    d.fn.raise_msi(1)
    plat.run_until_idle(verify=True)
    assert d.runs == [(1, 6)]


def test_multimsi_is_an_aligned_block_of_spis(v2m: Any) -> None:
    plat, kern = v2m
    one = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSI, 1, msi_vectors=1)
    four = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSI, 4, msi_vectors=4)
    base = kern.get_cached_msi_msg(four.virqs[0]).data
    assert base % 4 == 0 and base != kern.get_cached_msi_msg(one.virqs[0]).data
    four.fn.raise_msi(2)
    plat.run_until_idle(verify=True)
    assert four.runs == [(2, 0)]


def test_not_isolated_and_a_spoof_reaches_its_victim(v2m: Any) -> None:
    plat, kern = v2m
    victim = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    attacker = Driver(plat, kern, "0000:00:02.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    assert not kern.msi_isolated(victim.fn)
    addr, data = victim.fn.msi_message(0)
    attacker.fn.spoof_msi(addr, data)
    plat.run_until_idle(verify=True)
    assert victim.runs == [(0, 0)]
    [spoof] = plat.spoofed_msis
    assert spoof.doorbell == "MSI_SETSPI_NS" and "0000:00:01.0" in spoof.victim


def test_free_disables_and_discards_the_spis(v2m: Any) -> None:
    plat, kern = v2m
    d = Driver(plat, kern, "0000:00:01.0", PCI_IRQ_MSIX, 1, msix_vectors=1)
    spi = kern.get_cached_msi_msg(d.virqs[0]).data
    kern.disable_irq(d.virqs[0])
    plat.bus.write(SETSPI, spi, 4, master="0000:00:01.0")
    d.free()
    pend = plat.bus.read(plat.gicd_base + arch.GICD_ISPENDR + 4 * (spi // 32), 4)
    assert not pend >> (spi % 32) & 1
    assert kern.v2m.allocator.allocated() == []


def test_a_write_outside_the_frame_is_dropped(v2m: Any) -> None:
    plat, _ = v2m
    dropped: list[Event] = []
    plat.observe(dropped.append, [EventKind.MSI_DROPPED])
    hw = plat.machine.v2m[0]
    plat.bus.write(SETSPI, hw.spi_base + hw.spi_count, 4, master="0000:00:01.0")
    assert [e.reason for e in dropped] == ["spi-out-of-range"]


def test_frames_are_not_used_when_the_gic_has_lpis() -> None:
    plat = Platform.bare(2, v2m_frames=((FRAME, 80, 64),), direct_lpi=False, mbis=False)
    kern = plat.boot()
    assert kern.v2m is None and kern.msi_provider == "none"
    assert kern.log.grep("GICv2m: frames described by firmware, but the GICv3 has LPIs")


def test_frames_without_lpis_serve_platform_msis() -> None:
    plat = Platform.bare(2, lpis=False, v2m_frames=((FRAME, 80, 64), (0x0803_0000, 144, 32)),
                         direct_lpi=False, mbis=False)
    kern = plat.boot()
    assert [(f.spi_start, f.nr_spis) for f in kern.v2m.frames] == [(80, 64), (144, 32)]
    dev = plat.add_platform_device("dma", slots=1)
    first = kern.platform_msi_domain_alloc_irqs(
        dev, 1, lambda desc, msg: dev.program_slot(desc.msi_index, msg.address, msg.data))
    runs: list[int] = []
    kern.request_irq(first, lambda irq, d: runs.append(irq) or 1, name="dma")
    assert dev.msi_message(0) == (SETSPI, 80)
    dev.raise_msi(0)
    plat.run_until_idle(verify=True)
    assert runs == [first]


def test_a_vector_in_the_second_frame_uses_that_frames_doorbell() -> None:
    plat = Platform.bare(2, lpis=False, v2m_frames=((FRAME, 80, 2), (0x0803_0000, 144, 32)),
                         direct_lpi=False, mbis=False)
    kern = plat.boot()
    dev = plat.add_platform_device("dma", slots=3)
    first = kern.platform_msi_domain_alloc_irqs(
        dev, 3, lambda desc, msg: dev.program_slot(desc.msi_index, msg.address, msg.data))
    assert [dev.msi_message(i) for i in range(3)] == [
        (SETSPI, 80), (SETSPI, 81), (0x0803_0040, 144)]
    runs: list[int] = []
    kern.request_irq(first + 2, lambda irq, d: runs.append(irq) or 1, name="dma2")
    dev.raise_msi(2)
    plat.run_until_idle(verify=True)
    assert runs == [first + 2]


def test_one_invalid_frame_and_gicv2m_is_not_used() -> None:
    """MSI_TYPER overridden by firmware to SPIs 1000..1019: base + num > 1019, which
    Linux's is_msi_spi_valid refuses; gicv2m_of_init then tears every frame down."""
    import dataclasses
    plat = Platform.bare(2, lpis=False, v2m_frames=((FRAME, 80, 64), (0x0803_0000, 144, 32)),
                         direct_lpi=False, mbis=False)
    b = plat.board
    bad = dataclasses.replace(b.gic.v2m_frames[1], spi_base=1000, spi_count=20)
    plat.board = dataclasses.replace(b, gic=dataclasses.replace(
        b.gic, v2m_frames=(b.gic.v2m_frames[0], bad)))
    kern = plat.boot()
    assert kern.v2m is None and kern.msi_provider == "none"
    assert kern.log.grep("invalid MSI_TYPER (SPIs 1000...1019")


def test_frames_are_used_when_lpis_are_off_on_the_command_line() -> None:
    """gic_dist_supports_lpis() is LPIS && !gicv3_nolpi."""
    plat = Platform.bare(2, v2m_frames=((FRAME, 80, 64),), direct_lpi=False, mbis=False)
    kern = plat.boot(lpis=False)
    assert kern.msi_provider == "gicv2m" and kern.lpi is None
