"""The IMPLEMENTATION DEFINED choices a board can make as a peer does (QEMU's, issue 11):
``no1n``, ``iidr``, ``common_lpi_aff``, ``cpuif_id_bits``, ``dist_priority_bits``,
``busy_reads``.  Each default is the model's own choice, unchanged."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directlpi import ConfigError, EventKind, Platform
from directlpi.sim.bringup import bring_up, configure_lpi
from tests.hw import arch
from tests.hw.test_distributor import setup_spi

DEV = "0000:00:01.0"


def rd32(plat: Platform, off: int) -> int:
    return plat.bus.read(plat.gicd_base + off, 4)


def test_no1n_reports_no_1ofn_and_makes_irm_raz_wi() -> None:
    plain, qemu = Platform.bare(cpus=2), Platform.bare(cpus=2, no1n=True)
    assert (rd32(plain, arch.GICD_TYPER) >> 25) & 1 == 0
    assert (rd32(qemu, arch.GICD_TYPER) >> 25) & 1 == 1
    for plat, irm in ((plain, 1 << 31), (qemu, 0)):
        plat.bus.write(plat.gicd_base + arch.GICD_IROUTER + 8 * 40, (1 << 31) | 1, 8)
        assert plat.bus.read(plat.gicd_base + arch.GICD_IROUTER + 8 * 40, 8) == irm | 1


def test_no1n_routes_an_irm_write_by_its_affinity() -> None:
    plat = Platform.bare(cpus=2, no1n=True)
    plat.bus.write(plat.gicd_base + arch.GICD_CTLR, 2, 4)
    for cpu in (0, 1):
        plat.bus.write(plat.gicr_base(cpu) + arch.GICR_WAKER, 0, 4)
        plat.cpu(cpu).write_sysreg("ICC_PMR_EL1", 0xFF)
        plat.cpu(cpu).write_sysreg("ICC_IGRPEN1_EL1", 1)
    setup_spi(plat, 40, cpu=1)
    plat.bus.write(plat.gicd_base + arch.GICD_IROUTER + 8 * 40, (1 << 31) | 1, 8)
    plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4, 1 << 8, 4)
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 1023     # not 1 of N: PE 1's only
    assert plat.cpu(1).read_sysreg("ICC_IAR1_EL1") == 40


def test_iidr_names_gicd_and_gicr_iidr() -> None:
    plain, qemu = Platform.bare(cpus=1), Platform.bare(cpus=1, iidr=0x43B)
    assert rd32(plain, arch.GICD_IIDR) == 0x4C00143B
    assert rd32(qemu, arch.GICD_IIDR) == 0x43B
    assert qemu.bus.read(qemu.gicr_base(0) + arch.GICR_IIDR, 4) == 0x43B


def _typer(plat: Platform, cpu: int) -> int:
    return plat.bus.read(plat.gicr_base(cpu) + arch.GICR_TYPER, 8)


@pytest.mark.parametrize("aff", [0, 1, 2, 3])
def test_common_lpi_aff_is_reported(aff: int) -> None:
    plat = Platform.bare(cpus=2, common_lpi_aff=aff)
    assert all((_typer(plat, c) >> 24) & 3 == aff for c in (0, 1))


def _enable(plat: Platform, cpu: int, prop: int) -> None:
    rd = plat.gicr_base(cpu)
    plat.bus.write(rd + arch.GICR_PROPBASER, prop | 15, 8)
    plat.bus.write(rd + arch.GICR_PENDBASER, 0x4100_0000 + cpu * 0x10000, 8)
    plat.bus.write(rd + arch.GICR_CTLR, 1, 4)


@pytest.mark.parametrize(("aff", "mpidrs", "refused"), [
    (0, (0x0, 0x1_0000_0000), True),      # CommonLPIAff 0: every RD shares one table
    (1, (0x0, 0x1_0000_0000), False),     # 1: only RDs with the same Aff3 do
    (1, (0x0, 0x1_0000), True),           # same Aff3, different Aff2
    (2, (0x0, 0x1_0000), False),
    (3, (0x0, 0x100), False),
    (3, (0x0, 0x1), True),                # same Aff3.Aff2.Aff1
])
def test_common_lpi_aff_scopes_the_shared_table(aff: int, mpidrs: tuple[int, int],
                                                refused: bool) -> None:
    plat = Platform.bare(cpus=2, common_lpi_aff=aff, mpidrs=mpidrs)
    _enable(plat, 0, 0x4000_0000)
    before = plat.event_count(EventKind.UNPREDICTABLE)
    _enable(plat, 1, 0x4080_0000)
    enabled = plat.bus.read(plat.gicr_base(1) + arch.GICR_CTLR, 4) & 1
    assert enabled == (not refused)
    assert plat.event_count(EventKind.UNPREDICTABLE) == before + refused


def test_cpuif_id_bits_sets_icc_ctlr_idbits() -> None:
    def idbits(plat: Platform) -> int:
        return (plat.cpu(0).read_sysreg("ICC_CTLR_EL1") >> 11) & 7
    assert idbits(Platform.bare(cpus=1)) == 0
    assert idbits(Platform.bare(cpus=1, lpi_id_bits=20)) == 1
    assert idbits(Platform.bare(cpus=1, cpuif_id_bits=24)) == 1
    with pytest.raises(ConfigError, match="cpuif_id_bits") as e:
        Platform.bare(cpus=1, lpi_id_bits=20, cpuif_id_bits=16)
    assert e.value.errno == errno.EINVAL


def test_dist_priority_bits_keeps_more_bits_than_the_cpu_interface() -> None:
    plat = Platform.bare(cpus=1, dist_priority_bits=8)
    plat.bus.write(plat.gicd_base + arch.GICD_IPRIORITYR + 40, 0xFFFFFFFF, 4)
    assert rd32(plat, arch.GICD_IPRIORITYR + 40) == 0xFFFFFFFF
    plat.bus.write(plat.gicr_base(0) + arch.SGI_BASE + arch.GICR_IPRIORITYR, 0x3F, 1)
    assert plat.bus.read(plat.gicr_base(0) + arch.SGI_BASE + arch.GICR_IPRIORITYR, 1) == 0x3F
    plat.cpu(0).write_sysreg("ICC_PMR_EL1", 0xFF)
    assert plat.cpu(0).read_sysreg("ICC_PMR_EL1") == 0xF8          # the CPU interface's 5
    assert Platform.bare(cpus=1).bus.read(0x0800_0000 + arch.GICD_IPRIORITYR + 40, 4) == 0
    with pytest.raises(ConfigError, match="dist_priority_bits"):
        Platform.bare(cpus=1, priority_bits=6, dist_priority_bits=5)


def test_dist_priority_bits_selects_on_every_bit_it_holds() -> None:
    """0x3C beats 0x3F although both are 0x38 to a 5-bit CPU interface; a priority
    0xF9 is masked by PMR 0xF8 (the comparison uses the whole priority)."""
    plat = Platform.bare(cpus=1, dist_priority_bits=8)
    tables = bring_up(plat, pmr=0xF8)
    setup_spi(plat, 41, prio=0x3F)
    setup_spi(plat, 45, prio=0x3C)
    setup_spi(plat, 50, prio=0xF9)
    for intid in (41, 45, 50):
        plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4 * (intid // 32),
                       1 << (intid % 32), 4)
    cpu = plat.cpu(0)
    assert cpu.read_sysreg("ICC_HPPIR1_EL1") == 45
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 45
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0x38                   # group priority, 5 bits
    cpu.write_sysreg("ICC_EOIR1_EL1", 45)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 41
    cpu.write_sysreg("ICC_EOIR1_EL1", 41)
    assert cpu.read_sysreg("ICC_HPPIR1_EL1") == 50
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 1023                  # 0xF9 >= PMR 0xF8
    # LPIs: priority is the configuration byte's six bits.
    configure_lpi(plat, tables, 8192, priority=0x7C, invalidate=[0])
    configure_lpi(plat, tables, 8193, priority=0x78, invalidate=[0])
    for intid in (8192, 8193):
        plat.bus.write(plat.gicr_base(0) + arch.GICR_SETLPIR, intid, 4, master=DEV)
    assert cpu.read_sysreg("ICC_HPPIR1_EL1") == 8193


@given(st.integers(0, 6))
def test_busy_reads_is_how_long_rwp_and_children_asleep_read_busy(n: int) -> None:
    plat = Platform.bare(cpus=1, busy_reads=n, lpis_clearable=True)
    plat.bus.write(plat.gicd_base + arch.GICD_CTLR, 2, 4)
    rwp = [rd32(plat, arch.GICD_CTLR) >> 31 for _ in range(n + 2)]
    assert rwp == [1] * n + [0, 0]
    rd = plat.gicr_base(0)
    plat.bus.write(rd + arch.GICR_WAKER, 0, 4)
    asleep = [(plat.bus.read(rd + arch.GICR_WAKER, 4) >> 2) & 1 for _ in range(n + 2)]
    assert asleep == [1] * n + [0, 0]
    _enable(plat, 0, 0x4000_0000)
    plat.bus.write(rd + arch.GICR_CTLR, 0, 4)
    rwp = [(plat.bus.read(rd + arch.GICR_CTLR, 4) >> 3) & 1 for _ in range(n + 2)]
    assert rwp == [1] * n + [0, 0]


@pytest.mark.parametrize(("option", "value"), [
    ("no1n", 1), ("iidr", -1), ("iidr", 1 << 32), ("common_lpi_aff", 4),
    ("cpuif_id_bits", 20), ("cpuif_id_bits", True), ("dist_priority_bits", 9),
    ("busy_reads", -1)])
def test_bad_implementation_option_is_refused_by_name(option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"hardware option {option}:") as e:
        Platform.bare(cpus=1, **{option: value})
    assert e.value.errno == errno.EINVAL
