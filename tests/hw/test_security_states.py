"""Two Security states (GICD_CTLR.DS = 0): the Secure and the Non-secure view of every
register that differs, per IHI 0069 (and QEMU where the specification leaves a choice,
named in docs/hardware-model.md, "Two Security states").  Offsets and bit positions are
written here from the specification, not taken from the model's register map."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from directlpi import Platform
from directlpi.errors import SysregTrapError, UnknownSysregError
from tests.hw import arch

# GICD_CTLR, Secure view: EnableGrp0, EnableGrp1NS, EnableGrp1S, ARE_S, ARE_NS, DS.
S_GRP0, S_GRP1NS, S_GRP1S, S_ARE_S, S_ARE_NS, S_DS = 1, 2, 4, 1 << 4, 1 << 5, 1 << 6
NS_ARE = 1 << 4                 # Non-secure view: ARE_NS
TYPER_SECURITY_EXTN = 1 << 10
GICD_NSACR = 0x0E00
GICR_IGRPMODR0 = 0x0D00
GICR_NSACR = 0x0E00
SPI = 100                       # a Non-secure Group 1 SPI
SECURE_SPI = 101                # a Secure one


def two(cpus: int = 2, fiq: bool = True) -> Platform:
    return Platform.bare(cpus=cpus, security_states=2, scr_el3_fiq=fiq)


@contextmanager
def secure(plat: Platform, cpu: int = 0) -> Iterator[None]:
    with plat.machine.gic.secure_world(cpu):
        yield


def rd32(plat: Platform, off: int) -> int:
    return plat.bus.read(plat.gicd_base + off, 4)


def wr32(plat: Platform, off: int, value: int) -> None:
    plat.bus.write(plat.gicd_base + off, value, 4)


def word(intid: int) -> tuple[int, int]:
    return 4 * (intid // 32), 1 << (intid % 32)


def firmware(plat: Platform, *, fiq: bool = True, secure_spi: int | None = SECURE_SPI) -> None:
    """What EL3 does (the platform's own step), plus one Secure Group 1 SPI."""
    from directlpi.firmware.el3 import el3_gic_init
    el3_gic_init(plat.machine)
    if secure_spi is not None:
        off, bit = word(secure_spi)
        with secure(plat):
            wr32(plat, arch.GICD_IGROUPR + off, rd32(plat, arch.GICD_IGROUPR + off) & ~bit)
            wr32(plat, arch.GICD_IGRPMODR + off, bit)


# -- the distributor ---------------------------------------------------------------------------

def test_gicd_ctlr_has_a_secure_and_a_non_secure_view() -> None:
    plat = two()
    with secure(plat):
        assert rd32(plat, arch.GICD_CTLR) == S_ARE_S | S_ARE_NS          # DS = 0
    assert rd32(plat, arch.GICD_CTLR) == NS_ARE
    wr32(plat, arch.GICD_CTLR, 0x13 | S_DS | S_GRP1S)   # Linux's value, plus DS and G1S
    with secure(plat):
        assert rd32(plat, arch.GICD_CTLR) & ~(1 << 31) == S_ARE_S | S_ARE_NS | S_GRP1NS
        wr32(plat, arch.GICD_CTLR, S_GRP0 | S_GRP1S | S_DS)
        assert rd32(plat, arch.GICD_CTLR) & ~(1 << 31) == S_ARE_S | S_ARE_NS | S_GRP0 | S_GRP1S
    assert rd32(plat, arch.GICD_CTLR) & ~(1 << 31) == NS_ARE    # EnableGrp1A cleared again
    assert rd32(plat, arch.GICD_TYPER) & TYPER_SECURITY_EXTN
    one = Platform.bare(cpus=2)
    assert not rd32(one, arch.GICD_TYPER) & TYPER_SECURITY_EXTN
    assert rd32(one, arch.GICD_CTLR) & S_DS


def test_group_registers_are_secure_only() -> None:
    plat = two()
    off, bit = word(SPI)
    wr32(plat, arch.GICD_IGROUPR + off, 0xFFFFFFFF)
    wr32(plat, arch.GICD_IGRPMODR + off, 0xFFFFFFFF)
    with secure(plat):
        assert rd32(plat, arch.GICD_IGROUPR + off) == 0        # Non-secure writes ignored
        assert rd32(plat, arch.GICD_IGRPMODR + off) == 0
        wr32(plat, arch.GICD_IGROUPR + off, bit)
        wr32(plat, arch.GICD_IGRPMODR + off, bit << 1)
        assert rd32(plat, arch.GICD_IGROUPR + off) == bit
        assert rd32(plat, arch.GICD_IGRPMODR + off) == bit << 1
    assert rd32(plat, arch.GICD_IGROUPR + off) == 0            # RAZ to Non-secure
    assert rd32(plat, arch.GICD_IGRPMODR + off) == 0


def test_a_secure_spi_is_raz_wi_to_non_secure_unless_nsacr_grants_it() -> None:
    plat = two()
    firmware(plat)
    off, bit = word(SECURE_SPI)
    wr32(plat, arch.GICD_ISENABLER + off, bit)
    wr32(plat, arch.GICD_ISPENDR + off, bit)
    wr32(plat, arch.GICD_IPRIORITYR + SECURE_SPI, 0x10)
    plat.bus.write(plat.gicd_base + arch.GICD_IROUTER + 8 * SECURE_SPI, 1, 8)
    with secure(plat):
        assert not rd32(plat, arch.GICD_ISENABLER + off) & bit
        assert not rd32(plat, arch.GICD_ISPENDR + off) & bit
        assert plat.bus.read(plat.gicd_base + arch.GICD_IPRIORITYR + SECURE_SPI, 1) == 0x80
        assert plat.bus.read(plat.gicd_base + arch.GICD_IROUTER + 8 * SECURE_SPI, 8) == 0
        wr32(plat, arch.GICD_ISENABLER + off, bit)
    assert not rd32(plat, arch.GICD_ISENABLER + off) & bit     # its bit reads 0 to NS
    # GICD_NSACR (2 bits per SPI): 1 opens ISPENDR, 2 ICPENDR too, 3 IROUTER too.
    nsacr_off = GICD_NSACR + 4 * (SECURE_SPI // 16)
    shift = 2 * (SECURE_SPI % 16)
    for level in (1, 2, 3):
        with secure(plat):
            wr32(plat, nsacr_off, level << shift)
            assert rd32(plat, nsacr_off) == level << shift
            wr32(plat, arch.GICD_ICPENDR + off, bit)
        assert rd32(plat, nsacr_off) == 0                       # Secure only
        wr32(plat, arch.GICD_ISPENDR + off, bit)
        assert bool(rd32(plat, arch.GICD_ISPENDR + off) & bit)
        wr32(plat, arch.GICD_ICPENDR + off, bit)
        with secure(plat):
            still = bool(rd32(plat, arch.GICD_ISPENDR + off) & bit)
        assert still == (level < 2)
        plat.bus.write(plat.gicd_base + arch.GICD_IROUTER + 8 * SECURE_SPI, 1, 8)
        with secure(plat):
            routed = plat.bus.read(plat.gicd_base + arch.GICD_IROUTER + 8 * SECURE_SPI, 8)
        assert routed == (1 if level == 3 else 0)


def test_non_secure_priorities_are_seen_shifted() -> None:
    plat = two()
    firmware(plat)
    wr32(plat, arch.GICD_IPRIORITYR + SPI, 0xA0)     # byte 0 of the word: SPI 100
    with secure(plat):
        stored = plat.bus.read(plat.gicd_base + arch.GICD_IPRIORITYR + SPI, 1)
    assert stored == 0xD0                            # 0x80 | 0xA0 >> 1 (5 bits: 0xD0)
    assert plat.bus.read(plat.gicd_base + arch.GICD_IPRIORITYR + SPI, 1) == 0xA0
    with secure(plat):                               # Secure writes and reads are raw
        plat.bus.write(plat.gicd_base + arch.GICD_IPRIORITYR + SPI, 0x40, 1)
        assert plat.bus.read(plat.gicd_base + arch.GICD_IPRIORITYR + SPI, 1) == 0x40
    assert plat.bus.read(plat.gicd_base + arch.GICD_IPRIORITYR + SPI, 1) == 0x80


def test_setspi_sr_takes_secure_writes_only() -> None:
    plat = two()
    firmware(plat)
    off, bit = word(SPI)
    wr32(plat, arch.GICD_SETSPI_SR, SPI)
    with secure(plat):
        assert not rd32(plat, arch.GICD_ISPENDR + off) & bit
        wr32(plat, arch.GICD_SETSPI_SR, SPI)
        assert rd32(plat, arch.GICD_ISPENDR + off) & bit
    # A Non-secure MBI naming a Secure SPI has no effect (GICD_NSACR is 0).
    soff, sbit = word(SECURE_SPI)
    wr32(plat, arch.GICD_SETSPI_NSR, SECURE_SPI)
    with secure(plat):
        assert not rd32(plat, arch.GICD_ISPENDR + soff) & sbit


# -- the redistributors --------------------------------------------------------------------------

def test_gicr_waker_is_secure_only() -> None:
    plat = two()
    waker = plat.gicr_base(1) + arch.GICR_WAKER
    assert plat.bus.read(waker, 4) == 0                    # RAZ to Non-secure
    plat.bus.write(waker, 0, 4)                            # WI: the RD stays asleep
    with secure(plat, 1):
        assert plat.bus.read(waker, 4) & arch.WAKER_PROCESSOR_SLEEP
        plat.bus.write(waker, 0, 4)
        while plat.bus.read(waker, 4) & arch.WAKER_CHILDREN_ASLEEP:
            pass
    assert not plat.machine.gic.redists[1].asleep


def test_sgi_frame_groups_and_secure_bits() -> None:
    plat = two()
    sgi = plat.gicr_base(0) + arch.SGI_BASE
    plat.bus.write(sgi + arch.GICR_IGROUPR0, 0xFFFFFFFF, 4)
    with secure(plat):
        assert plat.bus.read(sgi + arch.GICR_IGROUPR0, 4) == 0
        plat.bus.write(sgi + arch.GICR_IGROUPR0, 0xFFFF00FF, 4)    # SGIs 8..15 Secure
        plat.bus.write(sgi + GICR_IGRPMODR0, 0x0000FF00, 4)        # ... Group 1
        plat.bus.write(sgi + GICR_NSACR, 0x5, 4)
        assert plat.bus.read(sgi + GICR_IGRPMODR0, 4) == 0xFF00
        assert plat.bus.read(sgi + GICR_NSACR, 4) == 0x5
    for off in (arch.GICR_IGROUPR0, GICR_IGRPMODR0, GICR_NSACR):
        assert plat.bus.read(sgi + off, 4) == 0
    plat.bus.write(sgi + arch.GICR_ISENABLER0, 0xFFFFFFFF, 4)
    assert plat.bus.read(sgi + arch.GICR_ISENABLER0, 4) == 0xFFFF00FF
    with secure(plat):
        assert plat.bus.read(sgi + arch.GICR_ISENABLER0, 4) == 0xFFFF00FF
    plat.bus.write(sgi + arch.GICR_IPRIORITYR + 1, 0xA0, 1)         # SGI 1, Non-secure
    plat.bus.write(sgi + arch.GICR_IPRIORITYR + 9, 0xA0, 1)         # SGI 9, Secure: WI
    with secure(plat):
        assert plat.bus.read(sgi + arch.GICR_IPRIORITYR + 1, 1) == 0xD0
        assert plat.bus.read(sgi + arch.GICR_IPRIORITYR + 9, 1) == 0
    assert plat.bus.read(sgi + arch.GICR_IPRIORITYR + 1, 1) == 0xA0


# -- the CPU interface -----------------------------------------------------------------------------

def test_el3_registers_are_undefined_at_non_secure_el1() -> None:
    plat = two()
    icc = plat.cpu(0)
    for name in ("ICC_SRE_EL3", "ICC_CTLR_EL3", "ICC_IGRPEN1_EL3"):
        with pytest.raises(SysregTrapError, match="UNDEFINED at Non-secure EL1"):
            icc.read_sysreg(name)
        with secure(plat):
            icc.read_sysreg(name)
    with secure(plat):
        assert icc.read_sysreg("ICC_SRE_EL3") == 0xF
        assert icc.read_sysreg("ICC_CTLR_EL3") >> 17 & 1          # nDS
    with pytest.raises(UnknownSysregError, match="two Security states"):
        Platform.bare(cpus=1).cpu(0).read_sysreg("ICC_SRE_EL3")


def test_group0_registers_trap_to_el3_only_with_scr_fiq() -> None:
    for fiq in (True, False):
        plat = two(fiq=fiq)
        firmware(plat, fiq=fiq)
        icc = plat.cpu(0)
        for name in ("ICC_IAR0_EL1", "ICC_HPPIR0_EL1", "ICC_BPR0_EL1", "ICC_IGRPEN0_EL1",
                     "ICC_AP0R0_EL1"):
            if fiq:
                with pytest.raises(SysregTrapError, match="traps to EL3"):
                    icc.read_sysreg(name)
            else:
                icc.read_sysreg(name)
        if not fiq:                     # reachable, but Group 0 is Secure: never seen
            assert icc.read_sysreg("ICC_IAR0_EL1") == arch.SPURIOUS


def test_pmr_and_rpr_have_the_non_secure_view_with_scr_fiq() -> None:
    plat = two(fiq=True)
    icc = plat.cpu(0)
    with secure(plat):
        icc.write_sysreg("SCR_EL3", 0b101)
    icc.write_sysreg("ICC_PMR_EL1", 0xF0)                 # PMR is 0 (Secure): ignored
    with secure(plat):
        assert icc.read_sysreg("ICC_PMR_EL1") == 0
        icc.write_sysreg("ICC_PMR_EL1", 0xFF)
        assert icc.read_sysreg("ICC_PMR_EL1") == 0xF8         # 5 priority bits
    assert icc.read_sysreg("ICC_PMR_EL1") == 0xF0             # (0xF8 << 1) & 0xFF
    icc.write_sysreg("ICC_PMR_EL1", 0xF0)
    with secure(plat):
        assert icc.read_sysreg("ICC_PMR_EL1") == 0xF8         # 0x80 | 0xF0 >> 1
    icc.write_sysreg("ICC_PMR_EL1", 0x08)
    with secure(plat):
        assert icc.read_sysreg("ICC_PMR_EL1") == 0x80         # 0x84 in 5 bits
    assert icc.read_sysreg("ICC_PMR_EL1") == 0                # Linux: no Group 0
    assert icc.read_sysreg("ICC_RPR_EL1") == 0xFF             # idle stays 0xFF
    plain = two(fiq=False)
    with secure(plain):
        plain.cpu(0).write_sysreg("ICC_PMR_EL1", 0xFF)
    plain.cpu(0).write_sysreg("ICC_PMR_EL1", 0x08)
    assert plain.cpu(0).read_sysreg("ICC_PMR_EL1") == 0x08     # FIQ = 0: unshifted


def test_banked_registers_have_one_copy_per_state() -> None:
    plat = two()
    icc = plat.cpu(0)
    icc.write_sysreg("ICC_IGRPEN1_EL1", 1)
    icc.write_sysreg("ICC_BPR1_EL1", 0)
    icc.write_sysreg("ICC_CTLR_EL1", 0b11)                    # CBPR is read-only here
    with secure(plat):
        assert icc.read_sysreg("ICC_IGRPEN1_EL1") == 0
        assert icc.read_sysreg("ICC_IGRPEN1_EL3") == 0b01     # EnableGrp1NS
        assert icc.read_sysreg("ICC_CTLR_EL1") & 0b11 == 0
        assert icc.read_sysreg("ICC_BPR1_EL1") == 2           # Secure minimum (5 bits)
        icc.write_sysreg("ICC_IGRPEN1_EL1", 1)
        assert icc.read_sysreg("ICC_IGRPEN1_EL3") == 0b11
        assert icc.read_sysreg("ICC_CTLR_EL3") & 0b11111 == 0b10000    # EOImode_EL1NS
        icc.write_sysreg("ICC_CTLR_EL3", 0b00010)                       # CBPR_EL1NS
    assert icc.read_sysreg("ICC_CTLR_EL1") & 0b11 == 0b01     # CBPR on, EOImode off now
    assert icc.read_sysreg("ICC_BPR1_EL1") == 3               # Non-secure: BPR0 + 1


def _pending_spi(plat: Platform, intid: int, prio: int) -> None:
    off, bit = word(intid)
    with secure(plat):
        plat.bus.write(plat.gicd_base + arch.GICD_IPRIORITYR + intid, prio, 1)
        plat.bus.write(plat.gicd_base + arch.GICD_IROUTER + 8 * intid, 0, 8)
        wr32(plat, arch.GICD_ISENABLER + off, bit)
        wr32(plat, arch.GICD_ISPENDR + off, bit)


@pytest.mark.parametrize("resolved", [False, True], ids=["by-name", "resolved-once"])
def test_a_higher_priority_secure_interrupt_hides_non_secure_ones(resolved: bool) -> None:
    """Also through the accessors a driver resolves once (the fused IAR1 and EOIR1)."""
    plat = two()
    firmware(plat)
    icc = plat.cpu(0)
    iar1 = icc.sysreg_reader("ICC_IAR1_EL1") if resolved else \
        (lambda: icc.read_sysreg("ICC_IAR1_EL1"))
    eoir1 = icc.sysreg_writer("ICC_EOIR1_EL1") if resolved else \
        (lambda v: icc.write_sysreg("ICC_EOIR1_EL1", v))
    with secure(plat):
        wr32(plat, arch.GICD_CTLR, S_GRP1NS | S_GRP1S)
        icc.write_sysreg("ICC_IGRPEN1_EL3", 0b11)
    _pending_spi(plat, SPI, 0xC0)
    _pending_spi(plat, SECURE_SPI, 0x20)
    assert icc.read_sysreg("ICC_HPPIR1_EL1") == arch.SPURIOUS
    assert iar1() == arch.SPURIOUS   # nothing acknowledged
    assert not icc.irq_pending()
    with secure(plat):
        assert icc.read_sysreg("ICC_HPPIR0_EL1") == 1020      # Secure Group 1 pending
        assert iar1() == SECURE_SPI  # EL3 takes it
        eoir1(SECURE_SPI)
        assert icc.read_sysreg("ICC_HPPIR0_EL1") == 1021      # now Non-secure Group 1
    assert icc.irq_pending()
    assert iar1() == SPI
    assert icc.read_sysreg("ICC_AP1R0_EL1") == 1 << (0xC0 >> 3)
    with secure(plat):
        assert icc.read_sysreg("ICC_AP1R0_EL1") == 0          # the Secure bank is empty
        assert icc.read_sysreg("ICC_RPR_EL1") == 0xC0
    assert icc.read_sysreg("ICC_RPR_EL1") == 0x80             # (0xC0 << 1) & 0xFF
    icc.write_sysreg("ICC_EOIR1_EL1", SPI)
    assert icc.read_sysreg("ICC_RPR_EL1") == 0xFF


def test_sgis_follow_groups_and_gicr_nsacr() -> None:
    plat = two()
    firmware(plat, secure_spi=None)
    sgi1 = plat.gicr_base(1) + arch.SGI_BASE
    with secure(plat, 1):
        plat.bus.write(sgi1 + arch.GICR_IGROUPR0, 0xFFFFFFFF & ~(1 << 3) & ~(1 << 4), 4)
        plat.bus.write(sgi1 + GICR_IGRPMODR0, 1 << 4, 4)      # SGI 3 Group 0, 4 Secure G1
    rd1 = plat.machine.gic.redists[1].sgi

    def send(reg: str, intid: int) -> bool:
        before = rd1.latch
        plat.cpu(0).write_sysreg(reg, (intid << 24) | 0b10)   # target list: PE 1 (Aff0 1)
        hit = bool(rd1.latch & ~before & (1 << intid))
        rd1.latch &= ~(1 << intid)
        return hit

    assert send("ICC_SGI1R_EL1", 2)                            # Non-secure Group 1
    assert not send("ICC_SGI1R_EL1", 3)
    assert not send("ICC_SGI0R_EL1", 3)                        # NSACR 0
    assert not send("ICC_ASGI1R_EL1", 4)
    with secure(plat, 1):
        plat.bus.write(sgi1 + GICR_NSACR, (1 << 6) | (2 << 8), 4)   # SGI 3: 1, SGI 4: 2
    assert send("ICC_SGI0R_EL1", 3)
    assert send("ICC_ASGI1R_EL1", 4)
    assert not send("ICC_ASGI1R_EL1", 2)                       # a Non-secure target


def test_lpi_priorities_are_seen_as_non_secure() -> None:
    from directlpi.sim.bringup import bring_up, configure_lpi
    for states, expected in ((1, 0xA0), (2, 0xD0)):
        plat = Platform.bare(cpus=1, security_states=states)
        if states == 2:
            firmware(plat, secure_spi=None)
            with secure(plat):
                plat.cpu(0).write_sysreg("SCR_EL3", 0b001)        # FIQ = 0: raw PMR
        tables = bring_up(plat)
        configure_lpi(plat, tables, 8200, priority=0xA0, invalidate=[0])
        plat.bus.write(plat.gicr_base(0) + arch.GICR_SETLPIR, 8200, 4, master="dev")
        assert plat.cpu(0).read_sysreg("ICC_IAR1_EL1") == 8200
        assert plat.cpu(0).read_sysreg("ICC_RPR_EL1") == expected
