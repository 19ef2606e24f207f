"""GICD register behaviour, one test per architectural rule (Arm IHI 0069 chapter 12)."""

from __future__ import annotations

import pytest

from directlpi import EventKind, Platform
from tests.hw import arch


def rd(plat: Platform, off: int, size: int = 4) -> int:
    return plat.bus.read(plat.gicd_base + off, size)


def wr(plat: Platform, off: int, value: int, size: int = 4) -> None:
    plat.bus.write(plat.gicd_base + off, value, size)


def enable_cpu(plat: Platform, cpu: int, pmr: int = 0xF0) -> None:
    base = plat.gicr_base(cpu)
    plat.bus.write(base + arch.GICR_WAKER, 0, 4)
    plat.bus.read(base + arch.GICR_WAKER, 4)
    plat.cpu(cpu).write_sysreg("ICC_PMR_EL1", pmr)
    plat.cpu(cpu).write_sysreg("ICC_IGRPEN1_EL1", 1)


def setup_spi(plat: Platform, intid: int, *, prio: int = 0xA0, cpu: int = 0,
              edge: bool = True, group1: bool = True) -> None:
    n, b = divmod(intid, 32)
    wr(plat, arch.GICD_IGROUPR + 4 * n, rd(plat, arch.GICD_IGROUPR + 4 * n) | (group1 << b))
    plat.bus.write(plat.gicd_base + arch.GICD_IPRIORITYR + intid, prio, 1)
    k, j = divmod(intid, 16)
    cfg = rd(plat, arch.GICD_ICFGR + 4 * k)
    cfg = (cfg | (2 << 2 * j)) if edge else (cfg & ~(2 << 2 * j))
    wr(plat, arch.GICD_ICFGR + 4 * k, cfg)
    aff = plat.cpu(cpu).mpidr
    wr(plat, arch.GICD_IROUTER + 8 * intid, aff & 0xFFFFFF, 8)
    wr(plat, arch.GICD_ISENABLER + 4 * n, 1 << b)


def test_typer_reports_lines_idbits_lpis_and_mbis() -> None:
    hw = Platform.bare(cpus=2, spis=64, lpi_id_bits=20, mbis=True)
    typer = rd(hw, arch.GICD_TYPER)
    assert typer & 0x1F == 2                     # ITLinesNumber: 32 * 3 = 96 INTIDs
    assert (typer >> 19) & 0x1F == 19            # IDbits = 20 - 1
    assert (typer >> 17) & 1 == 1                # LPIS
    assert (typer >> 16) & 1 == 1                # MBIS
    assert (typer >> 11) & 0x1F == 0             # num_LPIs: 0, IDbits says it
    assert (typer >> 8) & 1 == 0                 # no ESPI
    hw2 = Platform.bare(cpus=1, mbis=False, lpis=False)
    typer2 = rd(hw2, arch.GICD_TYPER)
    assert typer2 & 0x1F == 31 and (typer2 >> 16) & 3 == 0


def test_ctlr_are_and_ds_are_rao_wi_and_rwp_reads_once(plat: Platform) -> None:
    assert rd(plat, arch.GICD_CTLR) == (1 << 4) | (1 << 6)
    wr(plat, arch.GICD_CTLR, 0x3)
    first = rd(plat, arch.GICD_CTLR)
    assert first & (1 << 31)                     # RWP while the write takes effect
    assert rd(plat, arch.GICD_CTLR) == 0x3 | (1 << 4) | (1 << 6)
    wr(plat, arch.GICD_CTLR, 0)                  # ARE and DS cannot be cleared
    rd(plat, arch.GICD_CTLR)
    assert rd(plat, arch.GICD_CTLR) == (1 << 4) | (1 << 6)


def test_pidr2_says_gicv3_and_iidr_is_read_only(plat: Platform) -> None:
    assert (rd(plat, arch.GICD_PIDR2) >> 4) & 0xF == 3
    iidr = rd(plat, arch.GICD_IIDR)
    before = plat.event_count(EventKind.BAD_ACCESS)
    wr(plat, arch.GICD_IIDR, 0)
    assert rd(plat, arch.GICD_IIDR) == iidr
    assert plat.event_count(EventKind.BAD_ACCESS) == before + 1


def test_registers_for_intids_below_32_are_raz_wi_not_bad(plat: Platform) -> None:
    before = plat.event_count(EventKind.BAD_ACCESS)
    wr(plat, arch.GICD_ISENABLER, 0xFFFFFFFF)
    wr(plat, arch.GICD_IGROUPR, 0xFFFFFFFF)
    plat.bus.write(plat.gicd_base + arch.GICD_IPRIORITYR + 5, 0x80, 1)
    assert rd(plat, arch.GICD_ISENABLER) == 0
    assert rd(plat, arch.GICD_IGROUPR) == 0
    assert rd(plat, arch.GICD_IPRIORITYR + 4) == 0
    assert plat.event_count(EventKind.BAD_ACCESS) == before


def test_registers_beyond_itlinesnumber_are_reserved() -> None:
    hw = Platform.bare(cpus=1, spis=64)           # INTIDs 0..95
    before = hw.event_count(EventKind.BAD_ACCESS)
    wr(hw, arch.GICD_ISENABLER + 4 * 3, 1)        # INTIDs 96..127 do not exist
    assert rd(hw, arch.GICD_ISENABLER + 4 * 3) == 0
    assert hw.event_count(EventKind.BAD_ACCESS) == before + 2


def test_set_and_clear_enable_are_w1s_w1c(plat: Platform) -> None:
    wr(plat, arch.GICD_ISENABLER + 4, 0b1010)
    wr(plat, arch.GICD_ISENABLER + 4, 0b0001)
    assert rd(plat, arch.GICD_ISENABLER + 4) == 0b1011
    assert rd(plat, arch.GICD_ICENABLER + 4) == 0b1011
    wr(plat, arch.GICD_ICENABLER + 4, 0b0010)
    assert rd(plat, arch.GICD_ISENABLER + 4) == 0b1001


def test_ipriorityr_is_byte_accessible_and_keeps_implemented_bits(plat: Platform) -> None:
    plat.bus.write(plat.gicd_base + arch.GICD_IPRIORITYR + 33, 0xA7, 1)
    assert rd(plat, arch.GICD_IPRIORITYR + 32) == 0xA0 << 8      # 5 priority bits: 0xa7 -> 0xa0
    wr(plat, arch.GICD_IPRIORITYR + 36, 0x80604020)
    assert plat.bus.read(plat.gicd_base + arch.GICD_IPRIORITYR + 38, 1) == 0x60


def test_icfgr_sets_edge_for_spis_and_bit0_is_res0(plat: Platform) -> None:
    wr(plat, arch.GICD_ICFGR + 8, 0xFFFFFFFF)     # INTIDs 32..47
    assert rd(plat, arch.GICD_ICFGR + 8) == 0xAAAAAAAA


def test_irouter_is_64_bit_with_32_bit_halves(plat: Platform) -> None:
    off = arch.GICD_IROUTER + 8 * 40
    wr(plat, off, (0x12 << 32) | (1 << 31) | 0x030201 | (0xFF << 24), 8)
    assert rd(plat, off, 8) == (0x12 << 32) | (1 << 31) | 0x030201   # [30:24] RES0
    wr(plat, off + 4, 0x34)
    assert rd(plat, off, 8) == (0x34 << 32) | (1 << 31) | 0x030201
    assert rd(plat, off + 4) == 0x34
    # IROUTER<n> for n < 32 does not exist.
    before = plat.event_count(EventKind.BAD_ACCESS)
    wr(plat, arch.GICD_IROUTER + 8 * 5, 1, 8)
    assert plat.event_count(EventKind.BAD_ACCESS) == before + 1


def test_spi_routed_by_irouter_reaches_only_that_pe(plat: Platform) -> None:
    wr(plat, arch.GICD_CTLR, 0x2)
    for cpu in range(4):
        enable_cpu(plat, cpu)
    setup_spi(plat, 50, cpu=2)
    wr(plat, arch.GICD_ISPENDR + 4, 1 << (50 - 32))
    assert [plat.cpu(c).read_sysreg("ICC_HPPIR1_EL1") for c in range(4)] == [
        arch.SPURIOUS, arch.SPURIOUS, 50, arch.SPURIOUS]
    assert plat.cpu(2).read_sysreg("ICC_IAR1_EL1") == 50
    assert rd(plat, arch.GICD_ISACTIVER + 4) == 1 << 18
    assert rd(plat, arch.GICD_ISPENDR + 4) == 0   # edge: pending cleared by acknowledge


def test_one_of_n_routing_lets_the_first_acknowledger_take_it(plat: Platform) -> None:
    wr(plat, arch.GICD_CTLR, 0x2)
    for cpu in range(4):
        enable_cpu(plat, cpu)
    setup_spi(plat, 60)
    wr(plat, arch.GICD_IROUTER + 8 * 60, 1 << 31, 8)
    wr(plat, arch.GICD_ISPENDR + 4, 1 << 28)
    assert all(plat.cpu(c).read_sysreg("ICC_HPPIR1_EL1") == 60 for c in range(4))
    assert plat.cpu(3).read_sysreg("ICC_IAR1_EL1") == 60
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == arch.SPURIOUS


def test_setspi_nsr_makes_an_spi_pending_when_mbis() -> None:
    hw = Platform.bare(cpus=1, mbis=True)
    wr(hw, arch.GICD_CTLR, 0x2)
    enable_cpu(hw, 0)
    setup_spi(hw, 300)
    hw.bus.write(hw.gicd_base + arch.GICD_SETSPI_NSR, 300, 4, master="0000:00:02.0")
    assert rd(hw, arch.GICD_ISPENDR + 4 * (300 // 32)) == 1 << (300 % 32)
    assert hw.cpu(0).read_sysreg("ICC_IAR1_EL1") == 300
    before = hw.event_count(EventKind.IGNORED)
    wr(hw, arch.GICD_SETSPI_NSR, 1020)             # not an SPI: no effect
    assert hw.event_count(EventKind.IGNORED) == before + 1


def test_setspi_level_stays_pending_until_clrspi() -> None:
    hw = Platform.bare(cpus=1)
    wr(hw, arch.GICD_CTLR, 0x2)
    enable_cpu(hw, 0)
    setup_spi(hw, 301, edge=False)
    wr(hw, arch.GICD_SETSPI_NSR, 301)
    assert hw.cpu(0).read_sysreg("ICC_IAR1_EL1") == 301
    hw.cpu(0).write_sysreg("ICC_EOIR1_EL1", 301)
    assert hw.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == 301   # level: still asserted
    wr(hw, arch.GICD_CLRSPI_NSR, 301)
    assert hw.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == arch.SPURIOUS


def test_setspi_nsr_is_reserved_without_mbis() -> None:
    hw = Platform.bare(cpus=1, mbis=False)
    before = hw.event_count(EventKind.BAD_ACCESS)
    wr(hw, arch.GICD_SETSPI_NSR, 300)
    assert rd(hw, arch.GICD_ISPENDR + 4 * 9) == 0
    assert hw.event_count(EventKind.BAD_ACCESS) == before + 1


def test_level_wired_spi_is_pending_while_asserted(plat: Platform) -> None:
    wr(plat, arch.GICD_CTLR, 0x2)
    enable_cpu(plat, 0)
    setup_spi(plat, 40, edge=False)
    plat.set_spi_line(40, True)
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 40
    assert rd(plat, arch.GICD_ISPENDR + 4) & (1 << 8)     # active and pending
    plat.set_spi_line(40, False)
    plat.cpu(0).write_sysreg("ICC_EOIR1_EL1", 40)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == arch.SPURIOUS


def test_edge_wired_spi_latches_a_rising_edge(plat: Platform) -> None:
    wr(plat, arch.GICD_CTLR, 0x2)
    enable_cpu(plat, 0)
    setup_spi(plat, 41, edge=True)
    plat.set_spi_line(41, True)
    plat.set_spi_line(41, False)
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 41
    plat.cpu(0).write_sysreg("ICC_EOIR1_EL1", 41)
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == arch.SPURIOUS


def test_secure_only_registers_are_raz_wi(plat: Platform) -> None:
    before = plat.event_count(EventKind.BAD_ACCESS)
    wr(plat, arch.GICD_IGRPMODR + 4, 0xFFFFFFFF)
    wr(plat, arch.GICD_SETSPI_SR, 40)
    assert rd(plat, arch.GICD_IGRPMODR + 4) == 0
    assert rd(plat, arch.GICD_ISPENDR + 4) == 0
    assert plat.event_count(EventKind.BAD_ACCESS) == before


@pytest.mark.parametrize("off,size", [(0x0002, 2), (0x0001, 4), (0x0400 + 1, 2),
                                      (0x6000 + 8 * 40 + 2, 4), (0x0024, 4), (0x7FF0, 8)])
def test_unsupported_widths_and_reserved_offsets_are_bad_accesses(plat: Platform, off: int,
                                                                  size: int) -> None:
    before = plat.event_count(EventKind.BAD_ACCESS)
    assert rd(plat, off, size) == 0
    wr(plat, off, 0xFFFFFFFF, size)
    assert plat.event_count(EventKind.BAD_ACCESS) == before + 2
    assert rd(plat, arch.GICD_CTLR) & 0x3 == 0
