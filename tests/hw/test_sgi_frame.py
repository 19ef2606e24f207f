"""GICR SGI_base frame: SGIs and PPIs of one PE, and ICC_SGI1R_EL1 / SGI0R / ASGI1R."""

from __future__ import annotations

import pytest

from directlpi import EventKind, Platform, UnknownSysregError
from tests.hw import arch


def sgi(plat: Platform, cpu: int, off: int, size: int = 4) -> int:
    return plat.bus.read(plat.gicr_base(cpu) + arch.SGI_BASE + off, size)


def sgi_wr(plat: Platform, cpu: int, off: int, value: int, size: int = 4) -> None:
    plat.bus.write(plat.gicr_base(cpu) + arch.SGI_BASE + off, value, size)


def ready(plat: Platform, cpu: int) -> None:
    plat.bus.write(plat.gicd_base + arch.GICD_CTLR, 0x3, 4)
    plat.bus.write(plat.gicr_base(cpu) + arch.GICR_WAKER, 0, 4)
    plat.cpu(cpu).write_sysreg("ICC_PMR_EL1", 0xF8)
    plat.cpu(cpu).write_sysreg("ICC_IGRPEN1_EL1", 1)
    sgi_wr(plat, cpu, arch.GICR_IGROUPR0, 0xFFFFFFFF)


def test_sgis_are_always_edge_and_icfgr0_is_read_only(plat: Platform) -> None:
    assert sgi(plat, 0, arch.GICR_ICFGR0) == 0xAAAAAAAA
    sgi_wr(plat, 0, arch.GICR_ICFGR0, 0)
    assert sgi(plat, 0, arch.GICR_ICFGR0) == 0xAAAAAAAA
    assert plat.event_count(EventKind.BAD_ACCESS) == 1


def test_enable_pending_and_active_are_set_clear_pairs(plat: Platform) -> None:
    for s, c in ((arch.GICR_ISENABLER0, arch.GICR_ICENABLER0),
                 (arch.GICR_ISPENDR0, arch.GICR_ICPENDR0),
                 (arch.GICR_ISACTIVER0, arch.GICR_ICACTIVER0)):
        sgi_wr(plat, 1, s, 0x0001_0003)
        sgi_wr(plat, 1, s, 0x0000_0100)
        assert sgi(plat, 1, s) == sgi(plat, 1, c) == 0x0001_0103
        sgi_wr(plat, 1, c, 0x0000_0001)
        assert sgi(plat, 1, s) == 0x0001_0102


def test_ipriorityr_bytes_keep_five_priority_bits(plat: Platform) -> None:
    sgi_wr(plat, 0, arch.GICR_IPRIORITYR + 27, 0xFF, 1)
    assert sgi(plat, 0, arch.GICR_IPRIORITYR + 24) == 0xF8 << 24
    assert sgi(plat, 0, arch.GICR_IPRIORITYR + 27, 1) == 0xF8


def test_level_ppi_follows_its_line_edge_ppi_latches(plat: Platform) -> None:
    ready(plat, 0)
    sgi_wr(plat, 0, arch.GICR_ISENABLER0, (1 << 27) | (1 << 30))
    sgi_wr(plat, 0, arch.GICR_ICFGR1, 2 << (2 * (30 - 16)))   # PPI 30 edge, 27 level
    plat.set_ppi_line(0, 27, True)
    plat.set_ppi_line(0, 30, True)
    plat.set_ppi_line(0, 30, False)
    assert sgi(plat, 0, arch.GICR_ISPENDR0) == (1 << 27) | (1 << 30)
    plat.set_ppi_line(0, 27, False)
    assert sgi(plat, 0, arch.GICR_ISPENDR0) == 1 << 30
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 30


def test_sgi1r_targets_by_affinity_and_only_group1(plat: Platform) -> None:
    for cpu in range(4):
        ready(plat, cpu)
        sgi_wr(plat, cpu, arch.GICR_ISENABLER0, 0xFFFF)
    sgi_wr(plat, 3, arch.GICR_IGROUPR0, 0)                    # PE 3: SGIs are Group 0
    # INTID 5 to Aff1 = 0, TargetList = PEs 2 and 3.
    plat.cpu(0).write_sysreg("ICC_SGI1R_EL1", (5 << 24) | 0b1100)
    assert [plat.cpu(c).read_sysreg("ICC_HPPIR1_EL1") for c in range(4)] == [
        arch.SPURIOUS, arch.SPURIOUS, 5, arch.SPURIOUS]
    # IRM = 1: every PE but the sender.
    plat.cpu(1).write_sysreg("ICC_SGI1R_EL1", (1 << 40) | (7 << 24))
    assert [plat.cpu(c).read_sysreg("ICC_HPPIR1_EL1") for c in range(4)] == [
        7, arch.SPURIOUS, 5, arch.SPURIOUS]


def test_acknowledge_moves_an_sgi_from_pending_to_active(plat: Platform) -> None:
    ready(plat, 0)
    sgi_wr(plat, 0, arch.GICR_ISENABLER0, 1 << 2)
    plat.cpu(0).write_sysreg("ICC_SGI1R_EL1", (2 << 24) | 0b1)     # SGI 2 to PE 0 itself
    assert sgi(plat, 0, arch.GICR_ISPENDR0) == 1 << 2
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 2
    assert sgi(plat, 0, arch.GICR_ISPENDR0) == 0
    assert sgi(plat, 0, arch.GICR_ISACTIVER0) == 1 << 2
    plat.cpu(0).write_sysreg("ICC_EOIR1_EL1", 2)
    assert sgi(plat, 0, arch.GICR_ISACTIVER0) == 0
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == arch.SPURIOUS


@pytest.mark.parametrize("reg", ["ICC_SGI0R_EL1", "ICC_ASGI1R_EL1"])
def test_sgi0r_and_asgi1r_generate_group0_sgis_only(plat: Platform, reg: str) -> None:
    """One Security state (GICD_CTLR.DS = 1): ICC_SGI0R_EL1 generates Group 0 SGIs, and
    ICC_ASGI1R_EL1 (Group 1 of the *other* state, of which there is none) does the same;
    a target where the SGI is Group 1 does not receive it."""
    for cpu in range(4):
        ready(plat, cpu)
        sgi_wr(plat, cpu, arch.GICR_ISENABLER0, 0xFFFF)
        plat.cpu(cpu).write_sysreg("ICC_IGRPEN0_EL1", 1)
    sgi_wr(plat, 3, arch.GICR_IGROUPR0, 0)                    # PE 3: SGIs are Group 0
    plat.cpu(0).write_sysreg(reg, (5 << 24) | 0b1100)          # to PEs 2 and 3
    assert [plat.cpu(c).read_sysreg("ICC_HPPIR0_EL1") for c in range(4)] == [
        arch.SPURIOUS, arch.SPURIOUS, arch.SPURIOUS, 5]
    assert sgi(plat, 2, arch.GICR_ISPENDR0) == 0               # Group 1 there: not sent
    assert plat.cpu(3).read_sysreg("ICC_IAR0_EL1") == 5
    with pytest.raises(UnknownSysregError, match="write-only"):
        plat.cpu(0).read_sysreg(reg)
