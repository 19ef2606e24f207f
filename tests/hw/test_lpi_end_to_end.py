"""One Direct LPI from table set-up to EOI, with register writes only, and what observers see."""

from __future__ import annotations

from directlpi import Event, EventKind, Platform
from tests.hw import arch

PROP = 0x4010_0000
PEND = 0x4020_0000
BDF = "0000:00:01.0"


def test_direct_lpi_from_tables_to_eoi() -> None:
    hw = Platform.bare(cpus=4, lpi_id_bits=16)
    seen: list[Event] = []
    hw.observe(seen.append, [EventKind.DMA_WRITE, EventKind.LPI_PENDING, EventKind.ACK,
                             EventKind.EOI, EventKind.INVALIDATE, EventKind.SYNC])
    bus, d, r = hw.bus, hw.gicd_base, hw.gicr_base(2)
    bus.write(d + arch.GICD_CTLR, 0b10, 4)                       # EnableGrp1
    bus.write(r + arch.GICR_WAKER, 0, 4)
    while bus.read(r + arch.GICR_WAKER, 4) & arch.WAKER_CHILDREN_ASLEEP:
        pass
    hw.memory.write(PROP, bytes([0xA0 | arch.LPI_RES1]) * 0xE000)   # all disabled
    bus.write(r + arch.GICR_PROPBASER, PROP | (1 << 10) | (7 << 7) | 15, 8)
    bus.write(r + arch.GICR_PENDBASER, PEND | (1 << 10) | (7 << 7), 8)
    bus.write(r + arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS, 4)
    intid = 8192 + 77
    hw.memory.write(PROP + 77, bytes([0x80 | arch.LPI_RES1 | arch.LPI_ENABLE]))
    bus.write(r + arch.GICR_INVLPIR, intid, 8)
    while bus.read(r + arch.GICR_SYNCR, 4) & 1:
        pass
    cpu = hw.cpu(2)
    cpu.write_sysreg("ICC_PMR_EL1", 0xF0)
    cpu.write_sysreg("ICC_IGRPEN1_EL1", 1)

    bus.write(r + arch.GICR_SETLPIR, intid, 4, master=BDF)       # the MSI
    assert cpu.irq_pending()
    assert cpu.read_sysreg("ICC_IAR1_EL1") == intid
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0x80
    cpu.write_sysreg("ICC_EOIR1_EL1", intid)
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0xFF
    assert not cpu.irq_pending()

    assert [(e.kind, e.intid if e.intid >= 0 else None) for e in seen] == [
        (EventKind.INVALIDATE, intid), (EventKind.SYNC, None), (EventKind.DMA_WRITE, None),
        (EventKind.LPI_PENDING, intid), (EventKind.ACK, intid), (EventKind.EOI, intid)]
    dma = seen[2]
    assert dma.master == BDF and dma.addr == r + 0x40 and dma.value == intid
    assert hw.event_count(EventKind.BAD_ACCESS) == 0
    assert hw.event_count(EventKind.UNPREDICTABLE) == 0


def test_a_cancelled_subscription_stops_delivery() -> None:
    hw = Platform.bare(cpus=1)
    seen: list[Event] = []
    sub = hw.observe(seen.append, [EventKind.DMA_WRITE])
    hw.bus.write(0x4000_0000, 1, 4, master="dev")
    sub.cancel()
    hw.bus.write(0x4000_0000, 2, 4, master="dev")
    assert [e.value for e in seen] == [1]


def test_strict_platforms_raise_on_bad_accesses() -> None:
    import pytest

    from directlpi import ArchitectureViolation

    hw = Platform.bare(cpus=1, strict=True)
    with pytest.raises(ArchitectureViolation, match="reserved"):
        hw.bus.read(hw.gicd_base + 0x0024, 4)
    with pytest.raises(ArchitectureViolation, match="UNKNOWN reset value"):
        hw.bus.write(hw.gicr_base(0) + arch.GICR_CTLR, 1, 4)
    assert hw.bus.read(hw.gicr_base(0) + arch.GICR_CTLR, 4) & 1 == 0   # state unchanged
