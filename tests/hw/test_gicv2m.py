"""GICv2m MSI frames (Arm SBSA; Linux ``drivers/irqchip/irq-gic-v2m.c``): MSI_TYPER at
0x008 (Base [25:16], Number [9:0]), MSI_SETSPI_NS at 0x040, MSI_IIDR at 0xFCC.  A write
of an SPI's INTID to MSI_SETSPI_NS makes it pending at the distributor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directlpi import Event, EventKind, Platform
from tests.hw import arch
from tests.hw.its_arch import DEV, GICD_BASE, STRANGER, V2M_BASE

MSI_TYPER = 0x008
MSI_SETSPI_NS = 0x040
MSI_IIDR = 0xFCC

# QEMU virt: one frame, SPIs 80..143 (irqmap[VIRT_GIC_V2M] = 48, NUM_GICV2M_SPIS = 64).
VIRT_FRAME = (V2M_BASE, 80, 64)
SECOND_FRAME = (V2M_BASE + 0x10000, 160, 32)


def machine(*frames: tuple[int, int, int]) -> Platform:
    return Platform.bare(cpus=2, v2m_frames=frames or (VIRT_FRAME,))


def pending_spis(plat: Platform) -> set[int]:
    """SPIs whose GICD_ISPENDR<n> bit reads 1."""
    out = set()
    for n in range(1, 32):
        word = plat.bus.read(GICD_BASE + arch.GICD_ISPENDR + 4 * n, 4)
        out |= {32 * n + b for b in range(32) if word >> b & 1}
    return out


def enable_spi(plat: Platform, intid: int, cpu: int = 0) -> None:
    """Group 1, edge-triggered (MSIs are edges), priority 0xA0, routed to ``cpu``, enabled;
    distributor Group 1 on, ``cpu`` awake with its PMR open."""
    bus = plat.bus
    n, b = divmod(intid, 32)
    bus.write(GICD_BASE + arch.GICD_CTLR, 1 << 1, 4)
    bus.write(GICD_BASE + arch.GICD_IGROUPR + 4 * n,
              bus.read(GICD_BASE + arch.GICD_IGROUPR + 4 * n, 4) | 1 << b, 4)
    k, j = divmod(intid, 16)
    cfg = GICD_BASE + arch.GICD_ICFGR + 4 * k
    bus.write(cfg, bus.read(cfg, 4) | 2 << 2 * j, 4)
    bus.write(GICD_BASE + arch.GICD_IPRIORITYR + intid, 0xA0, 1)
    bus.write(GICD_BASE + arch.GICD_IROUTER + 8 * intid, plat.cpu(cpu).mpidr & 0xFFFFFF, 8)
    bus.write(GICD_BASE + arch.GICD_ISENABLER + 4 * n, 1 << b, 4)
    rd = plat.gicr_base(cpu)
    bus.write(rd + arch.GICR_WAKER, 0, 4)
    while bus.read(rd + arch.GICR_WAKER, 4) & arch.WAKER_CHILDREN_ASLEEP:
        pass
    plat.cpu(cpu).write_sysreg("ICC_PMR_EL1", 0xF0)
    plat.cpu(cpu).write_sysreg("ICC_IGRPEN1_EL1", 1)


def setspi(plat: Platform, value: int, size: int = 4, frame: int = V2M_BASE,
           master: str | None = DEV) -> None:
    plat.bus.write(frame + MSI_SETSPI_NS, value, size, master=master)


def test_msi_typer_reports_the_frames_spi_block() -> None:
    plat = machine(VIRT_FRAME, SECOND_FRAME)
    typer = plat.bus.read(V2M_BASE + MSI_TYPER, 4)
    assert (typer >> 16) & 0x3FF == 80                          # Base [25:16]
    assert typer & 0x3FF == 64                                  # Number [9:0]
    assert typer & ~(0x3FF << 16 | 0x3FF) == 0
    assert plat.bus.read(SECOND_FRAME[0] + MSI_TYPER, 4) == 160 << 16 | 32
    assert plat.event_count(EventKind.BAD_ACCESS) == 0


@pytest.mark.parametrize("size", [4, 2])
@pytest.mark.parametrize("spi", [80, 100, 143])
def test_a_write_of_an_in_range_spi_makes_it_pending(spi: int, size: int) -> None:
    plat = machine()
    setspi(plat, spi, size)
    assert pending_spis(plat) == {spi}
    assert plat.event_count(EventKind.MSI_DROPPED) == 0


def test_the_spi_is_acknowledged_once_enabled_and_routed() -> None:
    plat = machine()
    enable_spi(plat, 81, cpu=1)
    setspi(plat, 81)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == arch.SPURIOUS
    assert plat.cpu(1).read_sysreg("ICC_IAR1_EL1") == 81
    plat.cpu(1).write_sysreg("ICC_EOIR1_EL1", 81)
    assert pending_spis(plat) == set()                          # an edge: acknowledged, gone
    setspi(plat, 81)                                            # and again
    assert plat.cpu(1).read_sysreg("ICC_IAR1_EL1") == 81


def test_any_bus_master_may_signal_any_spi_of_the_frame() -> None:
    plat = machine()
    setspi(plat, 90, master=None)
    setspi(plat, 91, master=STRANGER)
    assert pending_spis(plat) == {90, 91}


@pytest.mark.parametrize("spi", [79, 144, 32, 0, 1019, 1023])
def test_an_spi_outside_the_frame_is_dropped(spi: int) -> None:
    plat = machine()
    seen: list[Event] = []
    plat.observe(seen.append, [EventKind.MSI_DROPPED])
    setspi(plat, spi)
    assert [(e.reason, e.intid, e.master) for e in seen] == [("spi-out-of-range", spi, DEV)]
    assert pending_spis(plat) == set()
    assert plat.event_count(EventKind.MSI_DROPPED) == 1


def test_frames_signal_only_their_own_spis() -> None:
    plat = machine(VIRT_FRAME, SECOND_FRAME)
    setspi(plat, 80, frame=SECOND_FRAME[0])                     # the first frame's SPI
    setspi(plat, 165, frame=V2M_BASE)                           # the second frame's SPI
    assert pending_spis(plat) == set()
    assert plat.event_count(EventKind.MSI_DROPPED) == 2
    setspi(plat, 165, frame=SECOND_FRAME[0])
    setspi(plat, 80, frame=V2M_BASE)
    assert pending_spis(plat) == {80, 165}


@pytest.mark.parametrize(("off", "size", "write"), [
    (MSI_SETSPI_NS, 8, True),                                   # not a DWORD / half write
    (MSI_SETSPI_NS, 1, True),
    (MSI_SETSPI_NS + 2, 2, True),
    (MSI_SETSPI_NS, 4, False),                                  # write-only
    (MSI_SETSPI_NS, 2, False),
    (MSI_TYPER, 4, True),                                       # read-only
    (MSI_IIDR, 4, True),
    (MSI_TYPER, 8, False),
    (0x000, 4, False),                                          # reserved
    (0x044, 4, True),
    (0x1000, 4, True),
    (0xFFFC, 4, False),
])
def test_bad_accesses_are_recorded_raz_wi_and_never_raise(off: int, size: int,
                                                          write: bool) -> None:
    plat = machine()
    typer = plat.bus.read(V2M_BASE + MSI_TYPER, 4)
    iidr = plat.bus.read(V2M_BASE + MSI_IIDR, 4)
    if write:
        plat.bus.write(V2M_BASE + off, 100, size, master=DEV)
    else:
        assert plat.bus.read(V2M_BASE + off, size) == 0
    assert plat.event_count(EventKind.BAD_ACCESS) == 1
    assert pending_spis(plat) == set()
    assert plat.bus.read(V2M_BASE + MSI_TYPER, 4) == typer
    assert plat.bus.read(V2M_BASE + MSI_IIDR, 4) == iidr


def test_msi_iidr_is_readable_and_names_the_implementer() -> None:
    plat = machine()
    iidr = plat.bus.read(V2M_BASE + MSI_IIDR, 4)
    assert iidr & 0xFFF == plat.bus.read(GICD_BASE + arch.GICD_IIDR, 4) & 0xFFF
    assert plat.event_count(EventKind.BAD_ACCESS) == 0


def test_an_already_pending_spi_coalesces_and_is_not_dropped() -> None:
    plat = machine()
    setspi(plat, 100)
    setspi(plat, 100)
    assert pending_spis(plat) == {100}
    assert plat.event_count(EventKind.MSI_DROPPED) == 0


# -- hypothesis ----------------------------------------------------------------------------

OFFSETS = st.one_of(st.sampled_from([MSI_TYPER, MSI_SETSPI_NS, MSI_SETSPI_NS, MSI_IIDR,
                                     0x042, 0x044]), st.integers(0, 0xFFFF))
VALUES = st.one_of(st.integers(60, 200), st.integers(0, (1 << 64) - 1),
                   st.integers(0, 0xFFFF))
access = st.tuples(st.sampled_from([V2M_BASE, SECOND_FRAME[0]]), OFFSETS,
                   st.sampled_from([1, 2, 3, 4, 8]), VALUES, st.booleans(),
                   st.sampled_from([None, DEV, STRANGER]))


@given(st.lists(access, min_size=1, max_size=60))
def test_no_access_stream_raises_and_exactly_the_in_range_writes_are_pending(
        stream: list[tuple[int, int, int, int, bool, str | None]]) -> None:
    frames = {V2M_BASE: range(80, 144), SECOND_FRAME[0]: range(160, 192)}
    plat = machine(VIRT_FRAME, SECOND_FRAME)
    typers = [plat.bus.read(base + MSI_TYPER, 4) for base in frames]
    expected: set[int] = set()
    dropped = 0
    for base, off, size, value, is_write, master in stream:
        if is_write:
            plat.bus.write(base + off, value, size, master=master)
            if off == MSI_SETSPI_NS and size in (2, 4):
                spi = value & ((1 << 8 * size) - 1) & 0x3FF      # SPI [9:0]; [31:10] RES0
                if spi in frames[base]:
                    expected.add(spi)
                else:
                    dropped += 1
        else:
            assert 0 <= plat.bus.read(base + off, size, master=master) < 1 << 64
    assert pending_spis(plat) == expected
    assert plat.event_count(EventKind.MSI_DROPPED) == dropped
    assert [plat.bus.read(base + MSI_TYPER, 4) for base in frames] == typers
