"""GICR RD_base behaviour: LPI tables, Direct LPI registers, caching, pending tables."""

from __future__ import annotations

import pytest

from directlpi import EventKind, Platform
from directlpi.sim.bringup import LpiTables, bring_up, configure_lpi
from tests.hw import arch

DEV = "0000:00:01.0"
PROP = 0x4100_0000
PEND = 0x4200_0000


def rd(plat: Platform, cpu: int, off: int, size: int = 4) -> int:
    return plat.bus.read(plat.gicr_base(cpu) + off, size)


def wr(plat: Platform, cpu: int, off: int, value: int, size: int = 4,
       master: str | None = None) -> None:
    plat.bus.write(plat.gicr_base(cpu) + off, value, size, master=master)


def setlpir(plat: Platform, cpu: int, intid: int) -> None:
    wr(plat, cpu, arch.GICR_SETLPIR, intid, 4, master=DEV)


def ack(plat: Platform, cpu: int) -> int:
    intid = plat.cpu(cpu).read_sysreg("ICC_IAR1_EL1")
    if intid != arch.SPURIOUS:
        plat.cpu(cpu).write_sysreg("ICC_EOIR1_EL1", intid)
    return intid


def drain(plat: Platform, cpu: int) -> list[int]:
    out = []
    while (i := ack(plat, cpu)) != arch.SPURIOUS:
        out.append(i)
    return out


# -- identification ------------------------------------------------------------------------

def test_typer_fields_sit_at_their_architectural_bits() -> None:
    hw = Platform.bare(cpus=20)
    typer = rd(hw, 17, arch.GICR_TYPER, 8)
    assert typer & 1 == 1                         # PLPIS, bit 0
    assert (typer >> 1) & 1 == 0                  # VLPIS: no GICv4
    assert (typer >> 3) & 1 == 1                  # DirectLPI, bit 3
    assert (typer >> 4) & 1 == 0                  # Last, bit 4: not the last RD
    assert (typer >> 8) & 0xFFFF == 17            # Processor_Number [23:8]
    assert (typer >> 24) & 3 == 0                 # CommonLPIAff: all RDs share a table
    assert typer >> 32 == 0x0101                  # Affinity: Aff1 = 1, Aff0 = 1 (PE 17)
    assert (rd(hw, 19, arch.GICR_TYPER, 8) >> 4) & 1 == 1
    # 32-bit halves of the 64-bit register.
    assert rd(hw, 17, arch.GICR_TYPER, 4) == typer & 0xFFFFFFFF
    assert rd(hw, 17, arch.GICR_TYPER + 4, 4) == typer >> 32


def test_last_is_set_at_the_end_of_each_region() -> None:
    hw = Platform.bare(cpus=130)
    lasts = [c for c in range(130) if (rd(hw, c, arch.GICR_TYPER, 8) >> 4) & 1]
    assert lasts == [122, 129]


def test_direct_lpi_can_be_missing_on_some_rds() -> None:
    hw = Platform.bare(cpus=3, direct_lpi=[True, False, True])
    assert [(rd(hw, c, arch.GICR_TYPER, 8) >> 3) & 1 for c in range(3)] == [1, 0, 1]
    assert rd(hw, 1, arch.GICR_CTLR) & arch.CTLR_IR == 0
    before = hw.event_count(EventKind.BAD_ACCESS)
    wr(hw, 1, arch.GICR_SETLPIR, 8192, 8)          # reserved on that RD
    rd(hw, 1, arch.GICR_SYNCR)
    assert hw.event_count(EventKind.BAD_ACCESS) == before + 2


def test_pidr2_and_read_only_iidr() -> None:
    hw = Platform.bare(cpus=1)
    assert (rd(hw, 0, arch.GICR_PIDR2) >> 4) & 0xF == 3
    iidr = rd(hw, 0, arch.GICR_IIDR)
    wr(hw, 0, arch.GICR_IIDR, ~iidr & 0xFFFFFFFF)
    assert rd(hw, 0, arch.GICR_IIDR) == iidr
    assert hw.event_count(EventKind.BAD_ACCESS) == 1


# -- GICR_WAKER -------------------------------------------------------------------------------

def test_waker_handshake_has_to_be_polled(plat: Platform) -> None:
    assert rd(plat, 0, arch.GICR_WAKER) == arch.WAKER_PROCESSOR_SLEEP | arch.WAKER_CHILDREN_ASLEEP
    wr(plat, 0, arch.GICR_WAKER, 0)
    assert rd(plat, 0, arch.GICR_WAKER) == arch.WAKER_CHILDREN_ASLEEP   # not quiescent yet
    assert rd(plat, 0, arch.GICR_WAKER) == 0
    wr(plat, 0, arch.GICR_WAKER, arch.WAKER_PROCESSOR_SLEEP)
    assert rd(plat, 0, arch.GICR_WAKER) == arch.WAKER_PROCESSOR_SLEEP
    assert rd(plat, 0, arch.GICR_WAKER) == arch.WAKER_PROCESSOR_SLEEP | arch.WAKER_CHILDREN_ASLEEP


def test_a_sleeping_pe_is_not_signalled(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8192, invalidate=[0])
    wr(plat, 0, arch.GICR_WAKER, arch.WAKER_PROCESSOR_SLEEP)
    setlpir(plat, 0, 8192)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == arch.SPURIOUS
    wr(plat, 0, arch.GICR_WAKER, 0)
    assert ack(plat, 0) == 8192


# -- PROPBASER / PENDBASER ------------------------------------------------------------------

def test_propbaser_and_pendbaser_keep_only_their_fields(plat: Platform) -> None:
    ones = (1 << 64) - 1
    wr(plat, 0, arch.GICR_PROPBASER, ones, 8)
    wr(plat, 0, arch.GICR_PENDBASER, ones, 8)
    # IDbits[4:0] InnerCache[9:7] Shareability[11:10] PA[51:12] OuterCache[58:56]
    assert rd(plat, 0, arch.GICR_PROPBASER, 8) == 0x070F_FFFF_FFFF_FF9F
    # InnerCache, Shareability, PA[51:16], OuterCache; PTZ (bit 62) is write-only.
    assert rd(plat, 0, arch.GICR_PENDBASER, 8) == 0x070F_FFFF_FFFF_0F80


def test_baser_32_bit_halves_compose(plat: Platform) -> None:
    wr(plat, 0, arch.GICR_PROPBASER, 0x4100_040F, 4)
    wr(plat, 0, arch.GICR_PROPBASER + 4, 0x1, 4)
    assert rd(plat, 0, arch.GICR_PROPBASER, 8) == 0x1_4100_040F


def test_basers_are_ignored_while_lpis_are_enabled(lpis: tuple[Platform, LpiTables]) -> None:
    plat, _ = lpis
    prop = rd(plat, 0, arch.GICR_PROPBASER, 8)
    pend = rd(plat, 0, arch.GICR_PENDBASER, 8)
    before = plat.event_count(EventKind.UNPREDICTABLE)
    wr(plat, 0, arch.GICR_PROPBASER, 0x5000_0000 | 15, 8)
    wr(plat, 0, arch.GICR_PENDBASER, 0x5100_0000, 8)
    assert rd(plat, 0, arch.GICR_PROPBASER, 8) == prop
    assert rd(plat, 0, arch.GICR_PENDBASER, 8) == pend
    assert plat.event_count(EventKind.UNPREDICTABLE) == before + 2


# -- GICR_CTLR.EnableLPIs ----------------------------------------------------------------------

def test_enable_lpis_before_programming_basers_is_refused(plat: Platform) -> None:
    wr(plat, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert rd(plat, 0, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS == 0
    assert plat.event_count(EventKind.UNPREDICTABLE) == 1


def test_enable_lpis_cannot_be_cleared_by_default(lpis: tuple[Platform, LpiTables]) -> None:
    plat, _ = lpis
    assert rd(plat, 0, arch.GICR_CTLR) == arch.CTLR_ENABLE_LPIS | arch.CTLR_IR   # CES = 0
    before = plat.event_count(EventKind.IGNORED)
    wr(plat, 0, arch.GICR_CTLR, 0)
    assert rd(plat, 0, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS
    assert plat.event_count(EventKind.IGNORED) == before + 1


def test_all_rds_must_share_the_configuration_table(plat: Platform) -> None:
    bring_up(plat, [0])
    wr(plat, 1, arch.GICR_PROPBASER, 0x4800_0000 | 15, 8)
    wr(plat, 1, arch.GICR_PENDBASER, PEND + 0x20_0000, 8)
    wr(plat, 1, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert rd(plat, 1, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS == 0
    assert plat.event_count(EventKind.UNPREDICTABLE) == 1


def test_propbaser_idbits_below_14_bits_implements_no_lpi(plat: Platform) -> None:
    bring_up(plat, [0], enable_lpis=False)
    wr(plat, 0, arch.GICR_PROPBASER, PROP | 12, 8)        # 13 INTID bits: no LPI INTID fits
    wr(plat, 0, arch.GICR_PENDBASER, PEND, 8)
    wr(plat, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    plat.memory.write(PROP, b"\xa3")
    setlpir(plat, 0, 8192)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == arch.SPURIOUS


def test_propbaser_idbits_is_capped_by_gicd_typer() -> None:
    hw = Platform.bare(cpus=1, lpi_id_bits=14)             # LPIs 8192..16383
    tables = bring_up(hw, lpi_bits=14, enable_lpis=False)
    wr(hw, 0, arch.GICR_PROPBASER, tables.prop | 23, 8)   # asks for 24 bits
    wr(hw, 0, arch.GICR_PENDBASER, tables.pend(0), 8)
    wr(hw, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    configure_lpi(hw, tables, 16383, invalidate=[0])
    setlpir(hw, 0, 16384)                                 # one past the last LPI
    setlpir(hw, 0, 16383)
    assert drain(hw, 0) == [16383]


# -- SETLPIR / CLRLPIR ---------------------------------------------------------------------------

def test_setlpir_has_no_effect_while_enable_lpis_is_0(plat: Platform) -> None:
    tables = bring_up(plat, [0], enable_lpis=False)
    configure_lpi(plat, tables, 8192)
    setlpir(plat, 0, 8192)
    assert plat.event_count(EventKind.IGNORED) == 1
    wr(plat, 0, arch.GICR_PROPBASER, PROP | 15, 8)
    wr(plat, 0, arch.GICR_PENDBASER, PEND, 8)
    wr(plat, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == arch.SPURIOUS   # it was not latched


@pytest.mark.parametrize("intid", [0, 31, 1023, 8191, 1 << 16, (1 << 32) - 1])
def test_setlpir_of_an_unimplemented_intid_is_ignored(lpis: tuple[Platform, LpiTables],
                                                      intid: int) -> None:
    plat, _ = lpis
    wr(plat, 0, arch.GICR_SETLPIR, intid, 8)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == arch.SPURIOUS
    assert plat.event_count(EventKind.IGNORED) == 1


def test_setlpir_of_a_pending_lpi_coalesces(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8200, invalidate=[2])
    for _ in range(3):
        setlpir(plat, 2, 8200)
    assert drain(plat, 2) == [8200]
    assert plat.event_count(EventKind.IGNORED) == 2


def test_setlpir_32_bit_write_is_zero_extended(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8192, invalidate=[0])
    wr(plat, 0, arch.GICR_SETLPIR + 4, 8192, 4)          # upper half alone: pINTID = 0
    assert drain(plat, 0) == []
    wr(plat, 0, arch.GICR_SETLPIR, (0xFFFF << 32) | 8192, 8)   # bits [63:32] are not pINTID
    assert drain(plat, 0) == [8192]


def test_the_rd_written_is_the_pe_that_receives(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 9000, invalidate=[3])
    setlpir(plat, 3, 9000)
    assert [plat.cpu(c).read_sysreg("ICC_HPPIR1_EL1") for c in range(4)] == [
        arch.SPURIOUS, arch.SPURIOUS, arch.SPURIOUS, 9000]


def test_clrlpir_removes_pending_state(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8300, invalidate=[1])
    setlpir(plat, 1, 8300)
    wr(plat, 1, arch.GICR_CLRLPIR, 8300, 8)
    assert rd(plat, 1, arch.GICR_SYNCR) == 1
    assert rd(plat, 1, arch.GICR_SYNCR) == 0
    assert drain(plat, 1) == []
    wr(plat, 1, arch.GICR_CLRLPIR, 8300, 8)               # not pending: no effect
    assert plat.event_count(EventKind.IGNORED) == 1


def test_pending_survives_being_disabled(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8400, enabled=False, invalidate=[0])
    setlpir(plat, 0, 8400)
    assert drain(plat, 0) == []                           # pending but disabled
    configure_lpi(plat, tables, 8400, invalidate=[0])
    assert drain(plat, 0) == [8400]


# -- the strict caching rule -----------------------------------------------------------------------

def test_config_change_without_invalidation_is_not_seen(lpis: tuple[Platform, LpiTables]) -> None:
    """A driver that unmasks by writing the property table but forgets GICR_INVLPIR
    keeps seeing the old (masked) configuration: the RD cached it."""
    plat, tables = lpis
    configure_lpi(plat, tables, 8500, enabled=False, invalidate=[0])
    setlpir(plat, 0, 8500)                                # the RD loads the (disabled) byte
    configure_lpi(plat, tables, 8500, enabled=True)       # memory only: no invalidate
    assert drain(plat, 0) == []
    wr(plat, 0, arch.GICR_INVLPIR, 8500, 8)
    assert drain(plat, 0) == [8500]


def test_invalidation_before_the_table_write_is_too_early(
        lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8501, enabled=False, invalidate=[0])
    setlpir(plat, 0, 8501)
    wr(plat, 0, arch.GICR_INVLPIR, 8501, 8)               # invalidate, then write: wrong order
    configure_lpi(plat, tables, 8501, enabled=True)
    assert drain(plat, 0) == []


def test_priority_change_needs_invalidation_too(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8600, priority=0x80, invalidate=[0])
    configure_lpi(plat, tables, 8601, priority=0x90, invalidate=[0])
    setlpir(plat, 0, 8600)
    setlpir(plat, 0, 8601)
    configure_lpi(plat, tables, 8601, priority=0x40)      # not invalidated
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == 8600
    wr(plat, 0, arch.GICR_INVALLR, 0, 8)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == 8601


def test_priority_lowered_while_pending_takes_effect_at_invalidation(
        lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8800, priority=0x80, invalidate=[0])
    configure_lpi(plat, tables, 8801, priority=0xA0, invalidate=[0])
    setlpir(plat, 0, 8800)
    setlpir(plat, 0, 8801)
    configure_lpi(plat, tables, 8800, priority=0xC0, invalidate=[0])
    assert drain(plat, 0) == [8801, 8800]


def test_invalidation_reaches_only_the_rd_written(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8700, enabled=False, invalidate=[0, 1])
    setlpir(plat, 1, 8700)
    configure_lpi(plat, tables, 8700, enabled=True, invalidate=[0])   # wrong RD
    assert drain(plat, 1) == []
    wr(plat, 1, arch.GICR_INVLPIR, 8700, 8)
    assert drain(plat, 1) == [8700]


def test_syncr_reads_busy_once_after_each_invalidation(lpis: tuple[Platform, LpiTables]) -> None:
    plat, _ = lpis
    seen = []
    plat.observe(seen.append, [EventKind.SYNC, EventKind.INVALIDATE])
    assert rd(plat, 0, arch.GICR_SYNCR) == 0
    wr(plat, 0, arch.GICR_INVLPIR, 8192, 8)
    assert [rd(plat, 0, arch.GICR_SYNCR) for _ in range(3)] == [1, 0, 0]
    wr(plat, 0, arch.GICR_INVALLR, 0, 8)
    assert [rd(plat, 0, arch.GICR_SYNCR) for _ in range(2)] == [1, 0]
    assert [e.kind for e in seen] == [EventKind.INVALIDATE, EventKind.SYNC,
                                      EventKind.INVALIDATE, EventKind.SYNC]


def test_a_driver_that_does_not_poll_syncr_leaves_a_trace(lpis: tuple[Platform, LpiTables]) -> None:
    plat, _ = lpis
    seen = []
    plat.observe(seen.append, [EventKind.SYNC, EventKind.INVALIDATE])
    wr(plat, 0, arch.GICR_INVLPIR, 8192, 8)
    wr(plat, 0, arch.GICR_INVLPIR, 8193, 8)
    assert [e.kind for e in seen] == [EventKind.INVALIDATE, EventKind.INVALIDATE]


# -- pending tables are real memory ---------------------------------------------------------------

def test_pending_bits_in_memory_become_pending_at_enable(plat: Platform) -> None:
    """kexec: the previous kernel left LPIs pending in the table; enabling LPIs adopts them."""
    tables = bring_up(plat, [0], enable_lpis=False)
    for intid in (8192, 8195, 9000):
        configure_lpi(plat, tables, intid)
    table = tables.pend(0)
    plat.memory.write(table + 8192 // 8, b"\x09")          # 8192 and 8195
    plat.memory.write(table + 9000 // 8, bytes((1 << (9000 % 8),)))
    wr(plat, 0, arch.GICR_PROPBASER, tables.prop | 15, 8)
    wr(plat, 0, arch.GICR_PENDBASER, table, 8)
    wr(plat, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert drain(plat, 0) == [8192, 8195, 9000]


def test_ptz_says_the_table_is_zero(plat: Platform) -> None:
    tables = bring_up(plat, [0], enable_lpis=False)
    configure_lpi(plat, tables, 8192)
    plat.memory.write(tables.pend(0) + 1024, b"\x01")
    wr(plat, 0, arch.GICR_PROPBASER, tables.prop | 15, 8)
    wr(plat, 0, arch.GICR_PENDBASER, tables.pend(0) | arch.PENDBASER_PTZ, 8)
    assert rd(plat, 0, arch.GICR_PENDBASER, 8) & arch.PENDBASER_PTZ == 0   # write-only
    wr(plat, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert drain(plat, 0) == []
    assert plat.event_count(EventKind.UNPREDICTABLE) == 1   # software lied about PTZ


def test_non_zero_first_kib_is_reported(plat: Platform) -> None:
    tables = bring_up(plat, [0], enable_lpis=False)
    plat.memory.write(tables.pend(0) + 3, b"\xff")
    wr(plat, 0, arch.GICR_PROPBASER, tables.prop | 15, 8)
    wr(plat, 0, arch.GICR_PENDBASER, tables.pend(0), 8)
    wr(plat, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert rd(plat, 0, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS
    assert plat.event_count(EventKind.UNPREDICTABLE) == 1


def test_disabling_lpis_writes_pending_state_back() -> None:
    hw = Platform.bare(cpus=1, lpis_clearable=True)
    tables = bring_up(hw)
    assert rd(hw, 0, arch.GICR_CTLR) & arch.CTLR_CES
    configure_lpi(hw, tables, 8192, enabled=False, invalidate=[0])
    configure_lpi(hw, tables, 8199, enabled=False, invalidate=[0])
    setlpir(hw, 0, 8192)
    setlpir(hw, 0, 8199)
    wr(hw, 0, arch.GICR_CTLR, 0)
    assert rd(hw, 0, arch.GICR_CTLR) & arch.CTLR_RWP
    assert rd(hw, 0, arch.GICR_CTLR) & (arch.CTLR_RWP | arch.CTLR_ENABLE_LPIS) == 0
    assert hw.memory.read(tables.pend(0) + 1024, 1) == bytes((0b1000_0001,))
    # ... and the next enable takes them back.
    configure_lpi(hw, tables, 8192)
    configure_lpi(hw, tables, 8199)
    wr(hw, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert drain(hw, 0) == [8192, 8199]


def test_reenabling_before_rwp_clears_is_unpredictable() -> None:
    hw = Platform.bare(cpus=1, lpis_clearable=True)
    bring_up(hw)
    wr(hw, 0, arch.GICR_CTLR, 0)
    wr(hw, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)      # without waiting for RWP
    assert hw.event_count(EventKind.UNPREDICTABLE) == 1
    rd(hw, 0, arch.GICR_CTLR)
    assert rd(hw, 0, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS == 0


def test_rds_enabling_lpis_must_share_one_property_table() -> None:
    """CommonLPIAff = 0: an RD enabling LPIs with another PROPBASER than an enabled RD's
    is UNPREDICTABLE (recorded, ignored); once that RD has disabled them, it may."""
    hw = Platform.bare(cpus=3, lpis_clearable=True)
    for cpu, prop in ((0, PROP), (1, PROP + 0x10000), (2, PROP)):
        wr(hw, cpu, arch.GICR_PROPBASER, prop | 15, 8)
        wr(hw, cpu, arch.GICR_PENDBASER, PEND + cpu * 0x10000, 8)
    events: list[str] = []
    hw.observe(lambda e: events.append(e.detail), [EventKind.UNPREDICTABLE])
    wr(hw, 0, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    wr(hw, 1, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert rd(hw, 1, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS == 0
    assert len(events) == 1 and "while GICR0 uses" in events[0]
    wr(hw, 2, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)           # the same table: fine
    assert rd(hw, 2, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS
    for cpu in (0, 2):
        wr(hw, cpu, arch.GICR_CTLR, 0)                          # CES: LPIs off again
        while rd(hw, cpu, arch.GICR_CTLR) & (1 << 3):           # RWP
            pass
    wr(hw, 1, arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS)
    assert rd(hw, 1, arch.GICR_CTLR) & arch.CTLR_ENABLE_LPIS
    assert len(events) == 1
