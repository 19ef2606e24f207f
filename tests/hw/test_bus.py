"""The bus: frame routing, RAM, bus masters, and never raising."""

from __future__ import annotations

import pytest

from directlpi import EventKind, Platform
from tests.hw import arch


def test_cpu_write_reaches_ram_and_reads_back(plat: Platform) -> None:
    plat.bus.write(0x4000_1000, 0xDEADBEEF, 4)
    assert plat.bus.read(0x4000_1000, 4) == 0xDEADBEEF
    assert plat.memory.read(0x4000_1000, 4) == bytes.fromhex("efbeadde")


def test_value_is_truncated_to_the_access_width(plat: Platform) -> None:
    plat.bus.write(0x4000_2000, 0x1_2345_6789, 4)
    assert plat.bus.read(0x4000_2000, 8) == 0x2345_6789


def test_dma_write_carries_its_bus_master(plat: Platform) -> None:
    seen = []
    plat.observe(seen.append, [EventKind.DMA_WRITE])
    plat.bus.write(0x4000_0000, 7, 4)  # a CPU store: not a DMA write
    plat.bus.write(0x4000_0000, 8, 4, master="0000:00:01.0")
    assert [(e.addr, e.value, e.master) for e in seen] == [(0x4000_0000, 8, "0000:00:01.0")]


def test_gicr_frames_follow_the_virt_layout() -> None:
    hw = Platform.bare(cpus=130)
    assert hw.gicd_base == 0x0800_0000
    assert hw.gicr_base(0) == 0x080A_0000
    assert hw.gicr_base(1) == 0x080C_0000
    assert hw.gicr_base(122) == 0x080A_0000 + 122 * 0x20000 == 0x08FE_0000
    assert hw.gicr_base(123) == 0x40_0000_0000
    assert hw.gicr_base(129) == 0x40_0000_0000 + 6 * 0x20000
    # Each RD answers at its own address: Processor_Number is GICR_TYPER[23:8].
    for cpu in (0, 1, 122, 123, 129):
        typer = hw.bus.read(hw.gicr_base(cpu) + arch.GICR_TYPER, 8)
        assert (typer >> 8) & 0xFFFF == cpu


@pytest.mark.parametrize("addr", [
    0x0000_1000,          # nothing there
    0x0900_0000,          # just past GICR region 0 of a 4-PE board: a hole
    0x080A_0000 + 4 * 0x20000,   # where PE 4's RD would be
    (1 << 52) + 0x1000,   # beyond the physical address space
    -8,
])
def test_unmapped_accesses_read_zero_ignore_writes_and_are_counted(plat: Platform,
                                                                   addr: int) -> None:
    before = plat.event_count(EventKind.BAD_ACCESS)
    plat.bus.write(addr, 0x55, 4)
    assert plat.bus.read(addr, 4) == 0
    assert plat.event_count(EventKind.BAD_ACCESS) == before + 2


@pytest.mark.parametrize("size", [0, 3, 5, 16, -4])
def test_impossible_sizes_are_bad_accesses_not_exceptions(plat: Platform, size: int) -> None:
    before = plat.event_count(EventKind.BAD_ACCESS)
    plat.bus.write(plat.gicd_base, 1, size)
    plat.bus.write(0x4000_0000, 1, size)
    assert plat.bus.read(plat.gicd_base, size) == 0
    assert plat.event_count(EventKind.BAD_ACCESS) == before + 3
    assert plat.memory.read(0x4000_0000, 1) == b"\x00"


def test_hole_message_names_the_region(plat: Platform) -> None:
    seen = []
    plat.observe(seen.append, [EventKind.BAD_ACCESS])
    plat.bus.read(0x080A_0000 + 10 * 0x20000, 4)
    assert seen[0].reason == "unmapped"
    assert "GICR region 0" in seen[0].detail


def test_the_fused_setlpir_doorbell_does_what_the_frame_table_does(
        lpis: tuple[Platform, object]) -> None:
    """A GICR_SETLPIR write goes straight to the RD (the bus's fused doorbell); it must be
    what the RD frame's own table does with it: the same MMIO_WRITE event, the same
    zero-extended INTID, and the other half of the register left to the table."""
    plat, _ = lpis
    seen: list[tuple[str, int, int, str | None]] = []
    plat.observe(lambda e: seen.append((e.source, e.addr, e.value, e.master)),
                 [EventKind.MMIO_WRITE])
    setlpir = plat.gicr_base(1) + arch.GICR_SETLPIR
    plat.bus.write(setlpir, 0xFFFF_0000_0000_2001, 8, master="0000:00:01.0")
    plat.bus.write(setlpir, 0x1_0000_2002, 4, master="0000:00:01.0")
    rd = plat.machine.gic.redists[1]
    assert {8193, 8194} <= rd.lpi_pending
    assert seen == [("GICR1", setlpir, 0xFFFF_0000_0000_2001, "0000:00:01.0"),
                    ("GICR1", setlpir, 0x2002, "0000:00:01.0")]
    ignored = plat.machine.hub.count(EventKind.IGNORED)
    plat.bus.write(setlpir + 4, 0x2003, 4, master="0000:00:01.0")   # bits [63:32]: INTID 0
    assert 8195 not in rd.lpi_pending and plat.machine.hub.count(EventKind.IGNORED) == ignored + 1


def test_a_doorbell_needs_a_frame_that_implements_the_access() -> None:
    plat = Platform.bare(cpus=2, direct_lpi=False)
    setlpir = plat.gicr_base(0) + arch.GICR_SETLPIR
    with pytest.raises(ValueError, match="no MMIO frame implements a 4-byte write"):
        plat.bus.add_doorbell(setlpir, 4, lambda value: None)
    with pytest.raises(ValueError, match="no MMIO frame implements a 8-byte write"):
        plat.bus.add_doorbell(0x4000_0000, 8, lambda value: None)             # RAM
    plat.bus.write(setlpir, 8192, 4, master="0000:00:01.0")        # no doorbell: RAZ/WI
    assert plat.machine.hub.count(EventKind.BAD_ACCESS) == 1
