"""ICC_* system registers: acknowledge, priority, preemption, EOI modes."""

from __future__ import annotations

import errno

import pytest

from directlpi import EventKind, Platform, UnknownSysregError
from directlpi.errors import OtherPeSysregError
from directlpi.sim.bringup import LpiTables, configure_lpi
from tests.hw import arch
from tests.hw.test_distributor import setup_spi

DEV = "0000:00:01.0"


def setlpir(plat: Platform, cpu: int, intid: int) -> None:
    plat.bus.write(plat.gicr_base(cpu) + arch.GICR_SETLPIR, intid, 4, master=DEV)


def test_nothing_pending_reads_spurious(lpis: tuple[Platform, LpiTables]) -> None:
    plat, _ = lpis
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 1023
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == 1023
    assert plat.cpu(0).read_sysreg("ICC_RPR_EL1") == 0xFF
    assert not plat.cpu(0).irq_pending()


def test_priority_ties_go_to_the_lowest_intid_across_sources(
        lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    for intid in (8300, 8200):
        configure_lpi(plat, tables, intid, priority=0xA0, invalidate=[0])
    setup_spi(plat, 700, prio=0xA0, cpu=0)
    setlpir(plat, 0, 8300)
    setlpir(plat, 0, 8200)
    plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4 * (700 // 32), 1 << (700 % 32), 4)
    order = []
    for _ in range(3):
        intid = plat.cpu(0).read_sysreg("ICC_IAR1_EL1")
        order.append(intid)
        plat.cpu(0).write_sysreg("ICC_EOIR1_EL1", intid)
    assert order == [700, 8200, 8300]


def test_lower_priority_value_wins(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8192, priority=0xC0, invalidate=[1])
    configure_lpi(plat, tables, 9999, priority=0x40, invalidate=[1])
    setlpir(plat, 1, 8192)
    setlpir(plat, 1, 9999)
    assert plat.cpu(1).read_sysreg("ICC_IAR1_EL1") == 9999


def test_pmr_masks_equal_and_lower_priorities(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8192, priority=0xA0, invalidate=[0])
    setlpir(plat, 0, 8192)
    cpu = plat.cpu(0)
    cpu.write_sysreg("ICC_PMR_EL1", 0xA0)
    assert cpu.read_sysreg("ICC_HPPIR1_EL1") == 8192       # HPPIR ignores the mask
    assert not cpu.irq_pending()
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 1023
    cpu.write_sysreg("ICC_PMR_EL1", 0xA8)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 8192


def test_pmr_keeps_only_implemented_priority_bits(plat: Platform) -> None:
    plat.cpu(0).write_sysreg("ICC_PMR_EL1", 0xFF)
    assert plat.cpu(0).read_sysreg("ICC_PMR_EL1") == 0xF8
    hw8 = Platform.bare(cpus=1, priority_bits=8)
    hw8.cpu(0).write_sysreg("ICC_PMR_EL1", 0xFF)
    assert hw8.cpu(0).read_sysreg("ICC_PMR_EL1") == 0xFF
    assert (hw8.cpu(0).read_sysreg("ICC_CTLR_EL1") >> 8) & 7 == 7


def test_only_a_higher_group_priority_preempts(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    cpu = plat.cpu(0)
    configure_lpi(plat, tables, 8192, priority=0xA0, invalidate=[0])
    configure_lpi(plat, tables, 8193, priority=0xA0, invalidate=[0])
    configure_lpi(plat, tables, 8194, priority=0x90, invalidate=[0])
    setlpir(plat, 0, 8192)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 8192
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0xA0
    setlpir(plat, 0, 8193)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 1023         # same priority: no preemption
    # BPR1 = 6: group priority is bits [7:6], so 0x90 and 0xa0 are the same group.
    cpu.write_sysreg("ICC_BPR1_EL1", 6)
    setlpir(plat, 0, 8194)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 1023
    cpu.write_sysreg("ICC_BPR1_EL1", 0)                    # below the minimum: becomes 3
    assert cpu.read_sysreg("ICC_BPR1_EL1") == 3
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 8194         # 0x90 preempts 0xa0
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0x90
    cpu.write_sysreg("ICC_EOIR1_EL1", 8194)
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0xA0
    cpu.write_sysreg("ICC_EOIR1_EL1", 8192)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 8193


def test_eoimode1_splits_priority_drop_and_deactivation(lpis: tuple[Platform, LpiTables]) -> None:
    plat, _ = lpis
    cpu = plat.cpu(0)
    cpu.write_sysreg("ICC_CTLR_EL1", 0b10)
    setup_spi(plat, 45, cpu=0)
    plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4, 1 << 13, 4)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 45
    cpu.write_sysreg("ICC_EOIR1_EL1", 45)
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0xFF
    assert plat.bus.read(plat.gicd_base + arch.GICD_ISACTIVER + 4, 4) == 1 << 13
    plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4, 1 << 13, 4)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 1023         # still active: not forwarded
    cpu.write_sysreg("ICC_DIR_EL1", 45)
    assert plat.bus.read(plat.gicd_base + arch.GICD_ISACTIVER + 4, 4) == 0
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 45


def test_dir_with_eoimode0_is_unpredictable_and_ignored(lpis: tuple[Platform, LpiTables]) -> None:
    plat, _ = lpis
    setup_spi(plat, 46, cpu=0)
    plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4, 1 << 14, 4)
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 46
    plat.cpu(0).write_sysreg("ICC_DIR_EL1", 46)
    assert plat.event_count(EventKind.UNPREDICTABLE) == 1
    assert plat.bus.read(plat.gicd_base + arch.GICD_ISACTIVER + 4, 4) == 1 << 14


def test_eoi_of_another_intid_is_reported(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8192, invalidate=[0])
    setlpir(plat, 0, 8192)
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 8192
    plat.cpu(0).write_sysreg("ICC_EOIR1_EL1", 8193)
    assert plat.event_count(EventKind.UNPREDICTABLE) == 1
    assert plat.cpu(0).read_sysreg("ICC_RPR_EL1") == 0xFF   # the priority was dropped anyway
    plat.cpu(0).write_sysreg("ICC_EOIR1_EL1", 8192)         # nothing active any more
    assert plat.event_count(EventKind.UNPREDICTABLE) == 2


def test_group0_interrupts_are_taken_through_iar0(lpis: tuple[Platform, LpiTables]) -> None:
    plat, _ = lpis
    plat.bus.write(plat.gicd_base + arch.GICD_CTLR, 0x3, 4)
    cpu = plat.cpu(0)
    cpu.write_sysreg("ICC_IGRPEN0_EL1", 1)
    setup_spi(plat, 50, cpu=0, group1=False)
    plat.bus.write(plat.gicd_base + arch.GICD_ISPENDR + 4, 1 << 18, 4)
    assert cpu.read_sysreg("ICC_HPPIR1_EL1") == 1023
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 1023
    assert cpu.read_sysreg("ICC_HPPIR0_EL1") == 50
    assert cpu.read_sysreg("ICC_IAR0_EL1") == 50
    cpu.write_sysreg("ICC_EOIR1_EL1", 50)                   # wrong group's EOI register
    assert plat.event_count(EventKind.UNPREDICTABLE) == 1
    cpu.write_sysreg("ICC_EOIR0_EL1", 50)
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0xFF


def test_group1_disabled_at_the_cpu_interface_blocks_lpis(
        lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8192, invalidate=[0])
    setlpir(plat, 0, 8192)
    plat.cpu(0).write_sysreg("ICC_IGRPEN1_EL1", 0)
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 1023
    plat.cpu(0).write_sysreg("ICC_IGRPEN1_EL1", 1)
    assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 8192


def test_gicd_group1_enable_gates_lpis(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    configure_lpi(plat, tables, 8192, invalidate=[0])
    setlpir(plat, 0, 8192)
    plat.bus.write(plat.gicd_base + arch.GICD_CTLR, 0, 4)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == 1023
    plat.bus.write(plat.gicd_base + arch.GICD_CTLR, 2, 4)
    assert plat.cpu(0).read_sysreg("ICC_HPPIR1_EL1") == 8192


def test_ctlr_reports_priority_and_id_bits() -> None:
    assert (Platform.bare(cpus=1).cpu(0).read_sysreg("ICC_CTLR_EL1") >> 8) & 0x3F == 0b00_0100
    wide = Platform.bare(cpus=1, lpi_id_bits=24).cpu(0).read_sysreg("ICC_CTLR_EL1")
    assert (wide >> 11) & 7 == 1                           # 24-bit INTIDs
    assert Platform.bare(cpus=1).cpu(0).read_sysreg("ICC_SRE_EL1") == 0x7


def test_cbpr_makes_bpr1_follow_bpr0(plat: Platform) -> None:
    cpu = plat.cpu(0)
    cpu.write_sysreg("ICC_BPR0_EL1", 4)
    cpu.write_sysreg("ICC_CTLR_EL1", 1)
    assert cpu.read_sysreg("ICC_BPR1_EL1") == 5
    cpu.write_sysreg("ICC_BPR1_EL1", 7)                    # ignored while CBPR
    cpu.write_sysreg("ICC_CTLR_EL1", 0)
    assert cpu.read_sysreg("ICC_BPR1_EL1") == 3


def test_unknown_or_wrong_direction_sysregs_raise(plat: Platform) -> None:
    with pytest.raises(UnknownSysregError) as exc:
        plat.cpu(0).read_sysreg("ICC_FOO_EL1")
    assert exc.value.errno == errno.EINVAL and "ICC_IAR1_EL1" in str(exc.value)
    with pytest.raises(UnknownSysregError, match="write-only"):
        plat.cpu(0).read_sysreg("ICC_EOIR1_EL1")
    with pytest.raises(UnknownSysregError, match="read-only"):
        plat.cpu(0).write_sysreg("ICC_IAR1_EL1", 0)


def test_active_priority_registers_follow_acknowledge_and_priority_drop(
        lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    cpu = plat.cpu(0)
    configure_lpi(plat, tables, 8192, priority=0xA0, invalidate=[0])
    configure_lpi(plat, tables, 8193, priority=0x40, invalidate=[0])
    assert cpu.read_sysreg("ICC_AP1R0_EL1") == 0
    setlpir(plat, 0, 8192)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 8192
    # 5 priority bits: 32 levels in ICC_AP1R0_EL1, bit i = group priority i << 3.
    assert cpu.read_sysreg("ICC_AP1R0_EL1") == 1 << (0xA0 >> 3)
    setlpir(plat, 0, 8193)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 8193            # preempts
    assert cpu.read_sysreg("ICC_AP1R0_EL1") == 1 << 20 | 1 << 8
    assert cpu.read_sysreg("ICC_AP0R0_EL1") == 0               # Group 0: none active
    cpu.write_sysreg("ICC_EOIR1_EL1", 8193)
    assert cpu.read_sysreg("ICC_AP1R0_EL1") == 1 << 20
    cpu.write_sysreg("ICC_EOIR1_EL1", 8192)
    assert cpu.read_sysreg("ICC_AP1R0_EL1") == 0


def test_active_priorities_are_saved_and_restored(lpis: tuple[Platform, LpiTables]) -> None:
    plat, tables = lpis
    cpu = plat.cpu(0)
    configure_lpi(plat, tables, 8192, priority=0xA0, invalidate=[0])
    configure_lpi(plat, tables, 8194, priority=0xC0, invalidate=[0])
    setlpir(plat, 0, 8192)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 8192
    saved = cpu.read_sysreg("ICC_AP1R0_EL1")
    cpu.write_sysreg("ICC_AP1R0_EL1", saved)                   # the value read: no change
    bad: list[str] = []
    plat.observe(lambda e: bad.append(e.reason), [EventKind.UNPREDICTABLE])
    cpu.write_sysreg("ICC_AP1R0_EL1", 0)                       # over live state: undefined
    assert bad == ["apr-write"] and cpu.read_sysreg("ICC_AP1R0_EL1") == saved
    cpu.write_sysreg("ICC_EOIR1_EL1", 8192)                    # context "switched out"
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0xFF
    cpu.write_sysreg("ICC_AP1R0_EL1", saved)                   # ... and restored
    assert cpu.read_sysreg("ICC_RPR_EL1") == 0xA0               # the running priority back
    setlpir(plat, 0, 8194)
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 1023              # 0xc0 cannot preempt it
    cpu.write_sysreg("ICC_EOIR1_EL1", 8192)                     # drops the restored one
    assert bad == ["apr-write"] and cpu.read_sysreg("ICC_AP1R0_EL1") == 0
    assert cpu.read_sysreg("ICC_IAR1_EL1") == 8194


@pytest.mark.parametrize(("bits", "regs"), [(5, 1), (6, 2), (7, 4), (8, 4)])
def test_the_active_priority_registers_implemented_follow_the_priority_bits(
        bits: int, regs: int) -> None:
    plat = Platform.bare(cpus=1, priority_bits=bits)
    for g in (0, 1):
        for n in range(4):
            name = f"ICC_AP{g}R{n}_EL1"
            if n < regs:
                assert plat.cpu(0).read_sysreg(name) == 0
            else:
                with pytest.raises(UnknownSysregError):
                    plat.cpu(0).read_sysreg(name)


def test_registers_resolved_once_behave_as_named_ones(lpis: tuple[Platform, LpiTables]) -> None:
    """What a driver resolves at probe (``sysreg_reader``/``sysreg_writer``: the fused
    acknowledge and EOI for IAR1 and EOIR1) acknowledges, drops the priority and is
    refused exactly as ``read_sysreg``/``write_sysreg`` by name."""
    plat, tables = lpis
    icc = plat.cpu(0)
    iar1, eoir1 = icc.sysreg_reader("ICC_IAR1_EL1"), icc.sysreg_writer("ICC_EOIR1_EL1")
    pmr = icc.sysreg_writer("ICC_PMR_EL1")
    configure_lpi(plat, tables, 8300, priority=0xA0, invalidate=[0])
    setlpir(plat, 0, 8300)
    pmr(0xA0)                                                   # masks priority 0xA0
    assert iar1() == 1023
    pmr(0xF0)
    assert icc.sysreg_reader("ICC_HPPIR1_EL1")() == 8300
    assert iar1() == 8300
    assert icc.read_sysreg("ICC_RPR_EL1") == 0xA0
    eoir1(8300)
    assert icc.read_sysreg("ICC_RPR_EL1") == 0xFF
    eoir1(8300)                                                 # nothing active any more
    assert plat.machine.hub.count(EventKind.UNPREDICTABLE) == 1
    plat.machine.gic.executing = 1                              # software runs on PE 1
    before = plat.machine.hub.count(EventKind.BAD_ACCESS)
    with pytest.raises(OtherPeSysregError, match="ICC_IAR1_EL1 of PE 0 by software running "
                       "on PE 1"):
        iar1()
    with pytest.raises(OtherPeSysregError, match="ICC_EOIR1_EL1 of PE 0"):
        eoir1(8300)
    assert plat.machine.hub.count(EventKind.BAD_ACCESS) == before + 2


def test_a_register_is_checked_when_it_is_resolved(plat: Platform) -> None:
    icc = plat.cpu(0)
    with pytest.raises(UnknownSysregError, match="ICC_EOIR1_EL1 is write-only"):
        icc.sysreg_reader("ICC_EOIR1_EL1")
    with pytest.raises(UnknownSysregError, match="ICC_IAR1_EL1 is read-only"):
        icc.sysreg_writer("ICC_IAR1_EL1")
    with pytest.raises(UnknownSysregError, match="unknown system register 'ICC_NOPE_EL1'"):
        icc.sysreg_reader("ICC_NOPE_EL1")
