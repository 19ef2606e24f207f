"""Register-level scenarios, as data, that both back-ends run step by step.

A scenario is a list of operations on one machine: stores and loads at physical
addresses (GIC MMIO or RAM), and system-register accesses executed on a given PE.
Every load and every system-register access is an *observation*; the differential
test compares the observations of QEMU and of the model one by one.

Addresses are QEMU ``virt``'s, which are also the model's default map: GICD at
0x0800_0000, RD_base of PE n at 0x080A_0000 + n * 0x20000 (SGI_base at +0x10000).
Offsets are the literal values of Arm IHI 0069 (not the model's register map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

GICD = 0x0800_0000
TABLES = 0x4040_0000
"""LPI tables of the scenarios: the configuration table, then one pending table per PE."""
PROP = TABLES
PEND = TABLES + 0x10000
PEND_STRIDE = 0x10000
TABLES_SIZE = 0x10000 * 3
IDBITS_16 = 15
"""GICR_PROPBASER.IDbits for 16 INTID bits (INTIDs up to 65535)."""
LPI = 8192
CPUS = 2


def rd(cpu: int) -> int:
    """RD_base of PE ``cpu``'s redistributor."""
    return 0x080A_0000 + cpu * 0x20000


def sgi(cpu: int) -> int:
    """SGI_base of PE ``cpu``'s redistributor."""
    return rd(cpu) + 0x10000


def pend(cpu: int) -> int:
    return PEND + cpu * PEND_STRIDE


@dataclass(frozen=True)
class W:
    """A store of ``size`` bytes (a PE's, in program order) at ``addr``."""

    addr: int
    value: int
    size: int = 4


@dataclass(frozen=True)
class R:
    """A load of ``size`` bytes at ``addr``, named ``name`` in reports: an observation."""

    name: str
    addr: int
    size: int = 4


@dataclass(frozen=True)
class Fill:
    """``length`` bytes of RAM at ``addr`` set to ``byte`` (table set-up)."""

    addr: int
    length: int
    byte: int = 0


@dataclass(frozen=True)
class SR:
    """MRS of ``reg`` on PE ``cpu``: an observation."""

    cpu: int
    reg: str


@dataclass(frozen=True)
class SW:
    """MSR of ``value`` to ``reg`` on PE ``cpu`` (whether it was accepted is observed)."""

    cpu: int
    reg: str
    value: int


Op = W | R | Fill | SR | SW


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    ops: tuple[Op, ...]


class Backend(Protocol):
    """What a scenario needs of a GIC: QEMU's (qemu_harness.QemuGic) or the model's."""

    def read(self, addr: int, size: int) -> int: ...
    def write(self, addr: int, value: int, size: int) -> None: ...
    def fill(self, addr: int, length: int, byte: int) -> None: ...
    def read_sysreg(self, cpu: int, name: str) -> int | str: ...
    def write_sysreg(self, cpu: int, name: str, value: int) -> str: ...


@dataclass(frozen=True)
class Observation:
    step: int
    what: str
    """The register (or "MSR <register>" for whether a write was accepted)."""
    value: int | str


def run(scenario: Scenario, gic: Backend, *, cpus: int = CPUS) -> list[Observation]:
    """Execute ``scenario`` on ``gic`` (at reset); the observations, in order."""
    gic.fill(TABLES, TABLES_SIZE, 0)
    out: list[Observation] = []
    for step, op in enumerate(scenario.ops):
        if isinstance(op, W):
            gic.write(op.addr, op.value, op.size)
        elif isinstance(op, R):
            out.append(Observation(step, op.name, gic.read(op.addr, op.size)))
        elif isinstance(op, Fill):
            gic.fill(op.addr, op.length, op.byte)
        elif isinstance(op, SR):
            out.append(Observation(step, f"{op.reg}@PE{op.cpu}", gic.read_sysreg(op.cpu, op.reg)))
        else:
            out.append(Observation(step, f"MSR {op.reg}@PE{op.cpu}",
                                   gic.write_sysreg(op.cpu, op.reg, op.value)))
    return out


# -- building blocks ------------------------------------------------------------------------

def gicd(name: str, off: int, size: int = 4) -> R:
    return R(f"GICD_{name}", GICD + off, size)


def gicr(cpu: int, name: str, off: int, size: int = 4) -> R:
    return R(f"GICR{cpu}_{name}", rd(cpu) + off, size)


def gicr_sgi(cpu: int, name: str, off: int, size: int = 4) -> R:
    return R(f"GICR{cpu}_{name}", sgi(cpu) + off, size)


def bring_up(groups: int = 3) -> tuple[Op, ...]:
    """What a driver does first: wake every RD, enable the groups at the distributor and
    at every CPU interface, open the priority mask."""
    ops: list[Op] = [W(rd(c) + 0x14, 0) for c in range(CPUS)]
    ops.append(W(GICD + 0x0, groups))
    for c in range(CPUS):
        ops += [SW(c, "ICC_PMR_EL1", 0xFF), SW(c, "ICC_IGRPEN0_EL1", 1),
                SW(c, "ICC_IGRPEN1_EL1", 1)]
    return tuple(ops)


def cpu_state(cpu: int) -> tuple[Op, ...]:
    """The registers that show a CPU interface's state without changing it."""
    return (SR(cpu, "ICC_HPPIR1_EL1"), SR(cpu, "ICC_HPPIR0_EL1"), SR(cpu, "ICC_RPR_EL1"),
            SR(cpu, "ICC_AP1R0_EL1"), SR(cpu, "ICC_AP0R0_EL1"), SR(cpu, "ISR_EL1"))


def sgi_prio(cpu: int, intid: int, prio: int) -> W:
    """GICR_IPRIORITYR byte of SGI/PPI ``intid``."""
    return W(sgi(cpu) + 0x400 + intid, prio, 1)


@dataclass(frozen=True)
class Spi:
    intid: int
    prio: int
    aff: int = 0
    """GICD_IROUTER value."""
    group: int = 1
    edge: bool = True
    enable: bool = True


def spi_setup(*spis: Spi) -> tuple[Op, ...]:
    """Route, prioritise, configure, group and enable ``spis``; the one-bit and two-bit
    registers are written once per word with every listed SPI's bits (the others 0)."""
    ops: list[Op] = []
    words: dict[tuple[int, int], int] = {}
    for spi in spis:
        n, bit = divmod(spi.intid, 32)
        cfg_n, cfg_k = divmod(spi.intid, 16)
        ops += [W(GICD + 0x6000 + 8 * spi.intid, spi.aff, 8),
                W(GICD + 0x400 + spi.intid, spi.prio, 1)]
        words.setdefault((0xC00, cfg_n), 0)
        words[0xC00, cfg_n] |= int(spi.edge) << (2 * cfg_k + 1)
        words.setdefault((0x80, n), 0)
        words[0x80, n] |= spi.group << bit
        words.setdefault((0x100, n), 0)
        words[0x100, n] |= int(spi.enable) << bit
    ops += [W(GICD + base + 4 * n, value) for (base, n), value in sorted(words.items())]
    return tuple(ops)


def spi_pend(intid: int) -> W:
    n, bit = divmod(intid, 32)
    return W(GICD + 0x200 + 4 * n, 1 << bit)


def lpi_tables(cpu: int, *, idbits: int = IDBITS_16, ptz: bool = False) -> tuple[Op, ...]:
    """PROPBASER (shared table) and PENDBASER of ``cpu``; cacheability as Linux writes it
    (RaWaWb, Inner Shareable)."""
    attrs = (7 << 7) | (1 << 10)
    return (W(rd(cpu) + 0x70, PROP | attrs | idbits, 8),
            W(rd(cpu) + 0x78, pend(cpu) | attrs | (int(ptz) << 62), 8))


def lpi_config(intid: int, prio: int, enable: bool = True) -> W:
    """The configuration byte of LPI ``intid``: priority, RES1 bit 1, Enable."""
    return W(PROP + intid - LPI, (prio & 0xFC) | 0x2 | int(enable), 1)


def enable_lpis(cpu: int) -> W:
    return W(rd(cpu) + 0x0, 1)


# -- the scenarios ---------------------------------------------------------------------------

def _id_registers() -> Scenario:
    ops: list[Op] = [
        gicd("CTLR", 0x0), gicd("TYPER", 0x4), gicd("IIDR", 0x8), gicd("TYPER2", 0xC),
        gicd("STATUSR", 0x10), gicd("PIDR2", 0xFFE8),
    ]
    for c in range(CPUS):
        ops += [gicr(c, "CTLR", 0x0), gicr(c, "IIDR", 0x4), gicr(c, "TYPER", 0x8, 8),
                gicr(c, "WAKER", 0x14), gicr(c, "PIDR2", 0xFFE8),
                gicr(c, "PROPBASER", 0x70, 8), gicr(c, "PENDBASER", 0x78, 8)]
        for reg in ("ICC_CTLR_EL1", "ICC_SRE_EL1", "ICC_PMR_EL1", "ICC_BPR0_EL1",
                    "ICC_BPR1_EL1", "ICC_RPR_EL1", "ICC_IGRPEN0_EL1", "ICC_IGRPEN1_EL1",
                    "ICC_HPPIR0_EL1", "ICC_HPPIR1_EL1", "ISR_EL1"):
            ops.append(SR(c, reg))
        ops += [SR(c, f"ICC_AP{g}R{n}_EL1") for g in (0, 1) for n in range(4)]
    return Scenario("id-registers", "identification and reset values", tuple(ops))


def _gicd_ctlr() -> Scenario:
    ops: list[Op] = [W(GICD, 0xFFFFFFFF), gicd("CTLR", 0x0), gicd("CTLR", 0x0),
                     W(GICD, 0x2), gicd("CTLR", 0x0), gicd("CTLR", 0x0),
                     W(GICD, 0x0), gicd("CTLR", 0x0), gicd("CTLR", 0x0)]
    return Scenario("gicd-ctlr", "GICD_CTLR: writable bits, ARE/DS fixed, RWP", tuple(ops))


def _spi_bit_registers() -> Scenario:
    """The one-bit-per-INTID registers: implemented SPIs only (224 on both), INTIDs 0-31
    RAZ/WI with affinity routing, set/clear pairs."""
    ops: list[Op] = []
    for name, s, c in (("ENABLER", 0x100, 0x180), ("PENDR", 0x200, 0x280),
                       ("ACTIVER", 0x300, 0x380)):
        for n in (0, 1, 6, 7, 8):
            ops += [W(GICD + s + 4 * n, 0xFFFFFFFF), gicd(f"IS{name}{n}", s + 4 * n),
                    gicd(f"IC{name}{n}", c + 4 * n)]
            ops += [W(GICD + c + 4 * n, 0x0F0F0F0F), gicd(f"IS{name}{n}", s + 4 * n)]
            ops += [W(GICD + c + 4 * n, 0xFFFFFFFF), gicd(f"IS{name}{n}", s + 4 * n)]
    for n in (0, 1, 7, 8):
        ops += [W(GICD + 0x80 + 4 * n, 0xA5A5A5A5), gicd(f"IGROUPR{n}", 0x80 + 4 * n)]
        ops += [W(GICD + 0xD00 + 4 * n, 0xFFFFFFFF), gicd(f"IGRPMODR{n}", 0xD00 + 4 * n)]
    return Scenario("spi-bit-registers", "IGROUPR, IS/ICENABLER, IS/ICPENDR, IS/ICACTIVER",
                    tuple(ops))


def _spi_priority_config() -> Scenario:
    ops: list[Op] = []
    for n in (0, 7, 8, 55, 56, 63):
        ops += [W(GICD + 0x400 + 4 * n, 0xFFFFFFFF), gicd(f"IPRIORITYR{n}", 0x400 + 4 * n)]
    ops += [W(GICD + 0x400 + 4 * 9, 0x80706050), gicd("IPRIORITYR9", 0x400 + 36)]
    ops += [W(GICD + 0x400 + 41, 0x3F, 1), gicd("IPRIORITYR10", 0x400 + 40),
            R("GICD_IPRIORITYR41(byte)", GICD + 0x400 + 41, 1)]
    for n in (0, 1, 2, 13, 14, 15, 16):
        ops += [W(GICD + 0xC00 + 4 * n, 0xFFFFFFFF), gicd(f"ICFGR{n}", 0xC00 + 4 * n)]
    ops += [W(GICD + 0xC00 + 8, 0x55555555), gicd("ICFGR2", 0xC00 + 8)]
    for n in (0, 8):
        ops += [W(GICD + 0x800 + 4 * n, 0x01010101), gicd(f"ITARGETSR{n}", 0x800 + 4 * n)]
    return Scenario("spi-priority-config", "IPRIORITYR (word and byte), ICFGR, ITARGETSR",
                    tuple(ops))


def _irouter() -> Scenario:
    ops: list[Op] = []
    for intid in (32, 33, 255, 256, 31):
        off = 0x6000 + 8 * intid
        ops += [W(GICD + off, 0xFFFFFFFFFFFFFFFF, 8), gicd(f"IROUTER{intid}", off, 8),
                W(GICD + off, 0x0000000100000001, 8), gicd(f"IROUTER{intid}", off, 8),
                W(GICD + off, 0x80000000, 8), gicd(f"IROUTER{intid}", off, 8)]
    ops += [W(GICD + 0x6000 + 8 * 40, 0x01, 4), W(GICD + 0x6004 + 8 * 40, 0x02, 4),
            gicd("IROUTER40", 0x6000 + 8 * 40, 8), gicd("IROUTER40.lo", 0x6000 + 8 * 40),
            gicd("IROUTER40.hi", 0x6004 + 8 * 40)]
    return Scenario("irouter", "GICD_IROUTER: writable fields, IRM, 32-bit halves", tuple(ops))


def _redist_lpi_registers() -> Scenario:
    ops: list[Op] = []
    for c in range(CPUS):
        ops += [W(rd(c) + 0x70, 0xFFFFFFFFFFFFFFFF, 8), gicr(c, "PROPBASER", 0x70, 8),
                W(rd(c) + 0x78, 0xFFFFFFFFFFFFFFFF, 8), gicr(c, "PENDBASER", 0x78, 8),
                *lpi_tables(c, ptz=True), gicr(c, "PROPBASER", 0x70, 8),
                gicr(c, "PENDBASER", 0x78, 8), gicr(c, "PROPBASER.lo", 0x70),
                gicr(c, "PENDBASER.hi", 0x7C),
                W(rd(c) + 0x14, 0xFFFFFFFF), gicr(c, "WAKER", 0x14),
                W(rd(c) + 0x14, 0), gicr(c, "WAKER", 0x14), gicr(c, "WAKER", 0x14),
                gicr(c, "STATUSR", 0x10), gicr(c, "SYNCR", 0xC0)]
    ops += [enable_lpis(0), gicr(0, "CTLR", 0x0), gicr(1, "CTLR", 0x0),
            W(rd(0) + 0x0, 0), gicr(0, "CTLR", 0x0), gicr(0, "CTLR", 0x0)]
    return Scenario("redist-lpi-registers",
                    "PROPBASER/PENDBASER masks, RES0 bits, PTZ read-back, WAKER, EnableLPIs",
                    tuple(ops))


def _sgi_ppi_registers() -> Scenario:
    ops: list[Op] = []
    c = 1
    for name, off in (("IGROUPR0", 0x80), ("ISENABLER0", 0x100), ("ISPENDR0", 0x200),
                      ("ISACTIVER0", 0x300), ("ICFGR1", 0xC04), ("IGRPMODR0", 0xD00),
                      ("NSACR", 0xE00)):
        ops += [W(sgi(c) + off, 0xFFFFFFFF), gicr_sgi(c, name, off)]
    for name, off in (("ICENABLER0", 0x180), ("ICPENDR0", 0x280), ("ICACTIVER0", 0x380)):
        ops += [W(sgi(c) + off, 0x00FF00FF), gicr_sgi(c, name, off)]
    ops += [gicr_sgi(c, "ICFGR0", 0xC00), W(sgi(c) + 0xC00, 0), gicr_sgi(c, "ICFGR0", 0xC00),
            W(sgi(c) + 0xC04, 0x0), gicr_sgi(c, "ICFGR1", 0xC04)]
    for n in range(8):
        ops += [W(sgi(c) + 0x400 + 4 * n, 0xFFFFFFFF), gicr_sgi(c, f"IPRIORITYR{n}",
                                                                0x400 + 4 * n)]
    ops += [W(sgi(c) + 0x400 + 5, 0x43, 1), R("GICR1_IPRIORITYR5(byte)", sgi(c) + 0x405, 1),
            gicr_sgi(0, "ISENABLER0", 0x100), gicr_sgi(0, "IPRIORITYR0", 0x400)]
    return Scenario("sgi-ppi-registers", "the SGI_base frame of one RD (and not the other's)",
                    tuple(ops))


def _cpuif_plain() -> Scenario:
    ops: list[Op] = []
    c = 0
    for reg, values in (("ICC_PMR_EL1", (0xFFFFFFFF, 0x5A, 0x07, 0xF8, 0x100)),
                        ("ICC_BPR0_EL1", (0, 1, 2, 3, 7, 0xFF)),
                        ("ICC_BPR1_EL1", (0, 1, 2, 3, 4, 7, 0xFF)),
                        ("ICC_CTLR_EL1", (0xFFFFFFFF, 0x1, 0x2, 0x0)),
                        ("ICC_IGRPEN0_EL1", (0xFFFFFFFF, 0x2, 0x1)),
                        ("ICC_IGRPEN1_EL1", (0xFFFFFFFF, 0x2, 0x1)),
                        ("ICC_SRE_EL1", (0x0, 0xFF))):
        for v in values:
            ops += [SW(c, reg, v), SR(c, reg)]
            if reg == "ICC_BPR0_EL1":
                ops.append(SR(c, "ICC_BPR1_EL1"))
    # CBPR: BPR1 reads BPR0 + 1 (saturated) and writes to it are ignored.
    ops += [SW(c, "ICC_BPR0_EL1", 3), SW(c, "ICC_CTLR_EL1", 1), SR(c, "ICC_BPR1_EL1"),
            SW(c, "ICC_BPR1_EL1", 6), SR(c, "ICC_BPR1_EL1"), SW(c, "ICC_CTLR_EL1", 0),
            SR(c, "ICC_BPR1_EL1")]
    return Scenario("cpuif-plain-registers", "PMR (RES0 bits, priority bits), BPR0/BPR1 "
                    "minimums, CBPR, CTLR, IGRPEN, SRE", tuple(ops))


def _ack_ties_and_priorities() -> Scenario:
    """SGIs, PPIs and SPIs pending together: acknowledged by priority, ties to the lowest
    INTID, then EOIs; RPR and AP1R0 after each step."""
    c = 0
    ops: list[Op] = [*bring_up()]
    for intid, prio in ((3, 0xA0), (5, 0xA0), (9, 0x60), (20, 0x68)):
        ops.append(sgi_prio(c, intid, prio))
    ops += [W(sgi(c) + 0xC04, 0xAAAAAAAA), W(sgi(c) + 0x80, 0xFFFFFFFF),
            W(sgi(c) + 0x100, (1 << 3) | (1 << 5) | (1 << 9) | (1 << 20))]
    ops += [*spi_setup(Spi(40, 0xA0), Spi(41, 0x60), Spi(70, 0x20, enable=False))]
    ops += [W(sgi(c) + 0x200, (1 << 3) | (1 << 5) | (1 << 9) | (1 << 20)),
            spi_pend(41), spi_pend(40), spi_pend(70), *cpu_state(c),
            gicd("ISPENDR1", 0x204), gicd("ISPENDR2", 0x208), gicr_sgi(c, "ISPENDR0", 0x200)]
    # Acknowledge and EOI one at a time, so that preemption plays no part: the order is
    # the selection rule's alone.
    for _ in range(7):
        ops += [SR(c, "ICC_HPPIR1_EL1"), SR(c, "ICC_IAR1_EL1"), SR(c, "ICC_RPR_EL1"),
                SR(c, "ICC_AP1R0_EL1"), gicd("ISACTIVER1", 0x304),
                gicr_sgi(c, "ISACTIVER0", 0x300)]
        ops.append(SW(c, "ICC_EOIR1_EL1", 0))    # placeholder replaced below
    return Scenario("ack-ties-priorities", "IAR1/EOIR1 with ties and mixed priorities",
                    _eoi_what_was_acked(tuple(ops)))


def _eoi_what_was_acked(ops: tuple[Op, ...]) -> tuple[Op, ...]:
    """Scenarios are data, so an EOI names an INTID known in advance: the placeholders
    ``SW(cpu, "ICC_EOIR1_EL1", 0)`` are filled with the expected acknowledge order."""
    order = iter((9, 41, 20, 3, 5, 40, 1023))
    out: list[Op] = []
    for op in ops:
        if isinstance(op, SW) and op.reg == "ICC_EOIR1_EL1" and op.value == 0:
            out.append(SW(op.cpu, op.reg, next(order)))
        else:
            out.append(op)
    return tuple(out)


def _preemption() -> Scenario:
    """Nested preemption through binary points: RPR, AP1R0, HPPIR and IAR at each level."""
    c = 0
    ops: list[Op] = [*bring_up(), W(sgi(c) + 0x80, 0xFFFFFFFF)]
    prios = {1: 0xC0, 2: 0xB8, 3: 0x80, 4: 0x78, 5: 0x40, 6: 0x10}
    for intid, prio in prios.items():
        ops.append(sgi_prio(c, intid, prio))
    ops += [W(sgi(c) + 0x100, 0x7E), SW(c, "ICC_BPR1_EL1", 3)]
    for intid in (1, 2, 3, 4, 5, 6):
        ops += [W(sgi(c) + 0x200, 1 << intid), *cpu_state(c), SR(c, "ICC_IAR1_EL1"),
                SR(c, "ICC_RPR_EL1"), SR(c, "ICC_AP1R0_EL1")]
    ops += [gicr_sgi(c, "ISACTIVER0", 0x300), gicr_sgi(c, "ISPENDR0", 0x200)]
    for intid in (6, 5, 3, 2, 1):
        ops += [SW(c, "ICC_EOIR1_EL1", intid), *cpu_state(c)]
    ops += [SR(c, "ICC_IAR1_EL1"), *cpu_state(c), SW(c, "ICC_EOIR1_EL1", 4), *cpu_state(c)]
    # BPR1 = 7 at 5 bits: no preemption at all while anything is active.
    ops += [SW(c, "ICC_BPR1_EL1", 7), W(sgi(c) + 0x200, 1 << 1), SR(c, "ICC_IAR1_EL1"),
            W(sgi(c) + 0x200, 1 << 6), *cpu_state(c), SR(c, "ICC_IAR1_EL1"),
            SW(c, "ICC_EOIR1_EL1", 1), SR(c, "ICC_IAR1_EL1"), SR(c, "ICC_RPR_EL1"),
            SW(c, "ICC_EOIR1_EL1", 6), *cpu_state(c)]
    # PMR: equal and lower priorities are masked.
    ops += [SW(c, "ICC_PMR_EL1", 0x80), W(sgi(c) + 0x200, (1 << 3) | (1 << 4)),
            *cpu_state(c), SR(c, "ICC_IAR1_EL1"), SW(c, "ICC_EOIR1_EL1", 4),
            SW(c, "ICC_PMR_EL1", 0x88), SR(c, "ICC_IAR1_EL1"), SR(c, "ICC_PMR_EL1"),
            SW(c, "ICC_EOIR1_EL1", 3), *cpu_state(c)]
    return Scenario("preemption", "RPR with nested preemption, BPR1, PMR, AP1R0", tuple(ops))


def _eoimode_dir() -> Scenario:
    c = 0
    ops: list[Op] = [*bring_up(), W(sgi(c) + 0x80, 0xFFFFFFFF), sgi_prio(c, 2, 0x80),
                     sgi_prio(c, 7, 0x40), W(sgi(c) + 0x100, 0x84), *spi_setup(Spi(50, 0x50)),
                     SW(c, "ICC_CTLR_EL1", 0x2), SR(c, "ICC_CTLR_EL1"),
                     W(sgi(c) + 0x200, 0x84), spi_pend(50)]
    for intid in (7, 50, 2):
        ops += [SR(c, "ICC_IAR1_EL1"), SW(c, "ICC_EOIR1_EL1", intid), *cpu_state(c),
                gicr_sgi(c, "ISACTIVER0", 0x300), gicd("ISACTIVER1", 0x304)]
    ops += [W(sgi(c) + 0x200, 0x84), *cpu_state(c)]
    for intid in (2, 50, 7, 7):
        ops += [SW(c, "ICC_DIR_EL1", intid), gicr_sgi(c, "ISACTIVER0", 0x300),
                gicd("ISACTIVER1", 0x304), *cpu_state(c)]
    ops += [SR(c, "ICC_IAR1_EL1"), SW(c, "ICC_EOIR1_EL1", 7), SW(c, "ICC_DIR_EL1", 7),
            SR(c, "ICC_IAR1_EL1"), SW(c, "ICC_CTLR_EL1", 0), SW(c, "ICC_EOIR1_EL1", 2),
            gicr_sgi(c, "ISACTIVER0", 0x300), *cpu_state(c)]
    return Scenario("eoimode-dir", "ICC_CTLR_EL1.EOImode = 1: EOIR drops priority, DIR "
                    "deactivates", tuple(ops))


def _group0() -> Scenario:
    c = 0
    ops: list[Op] = [*bring_up(), W(sgi(c) + 0x80, 0xFFFFFF00), sgi_prio(c, 1, 0x80),
                     sgi_prio(c, 9, 0x40), sgi_prio(c, 10, 0x20), W(sgi(c) + 0x100, 0x602),
                     W(sgi(c) + 0x200, 0x602), *cpu_state(c), SR(c, "ICC_IAR1_EL1"),
                     SR(c, "ICC_IAR0_EL1"), *cpu_state(c), SR(c, "ICC_IAR0_EL1"),
                     SW(c, "ICC_EOIR1_EL1", 1), *cpu_state(c), SW(c, "ICC_EOIR0_EL1", 1),
                     *cpu_state(c), SR(c, "ICC_IAR1_EL1"), *cpu_state(c),
                     SW(c, "ICC_EOIR1_EL1", 10), SW(c, "ICC_EOIR1_EL1", 9),
                     *cpu_state(c), gicr_sgi(c, "ISACTIVER0", 0x300)]
    # Group 0 enable off at the CPU interface, then at the distributor.
    ops += [W(sgi(c) + 0x200, 0x2), SW(c, "ICC_IGRPEN0_EL1", 0), *cpu_state(c),
            SR(c, "ICC_IAR0_EL1"), SW(c, "ICC_IGRPEN0_EL1", 1), W(GICD, 0x2), *cpu_state(c),
            W(GICD, 0x3), *cpu_state(c), SR(c, "ICC_IAR0_EL1"), SW(c, "ICC_EOIR0_EL1", 1),
            *cpu_state(c)]
    return Scenario("group0", "Group 0 interrupts: IAR0/EOIR0/HPPIR0, FIQ, group enables",
                    tuple(ops))


def _sgis() -> Scenario:
    ops: list[Op] = [*bring_up()]
    for c in range(CPUS):
        ops += [W(sgi(c) + 0x80, 0xFFFF00FF), W(sgi(c) + 0x100, 0xFFFF),
                W(sgi(c) + 0x400, 0x80808080), W(sgi(c) + 0x404, 0x80808080),
                W(sgi(c) + 0x408, 0x80808080), W(sgi(c) + 0x40C, 0x80808080)]
    pend0, pend1 = gicr_sgi(0, "ISPENDR0", 0x200), gicr_sgi(1, "ISPENDR0", 0x200)
    for reg, value in (
        ("ICC_SGI1R_EL1", (1 << 24) | 0b10),          # SGI 1 to PE 1 (Group 1 there)
        ("ICC_SGI1R_EL1", (2 << 24) | 0b11),          # SGI 2 to PEs 0 and 1
        ("ICC_SGI1R_EL1", (3 << 24) | (1 << 40)),     # SGI 3 to all but self (IRM)
        ("ICC_SGI1R_EL1", (12 << 24) | 0b10),         # SGI 12: Group 0 at PE 1: not sent
        ("ICC_SGI0R_EL1", (13 << 24) | 0b10),         # SGI 13, Group 0 at PE 1
        ("ICC_SGI0R_EL1", (4 << 24) | 0b10),          # SGI 4: Group 1 at PE 1: not sent
        ("ICC_ASGI1R_EL1", (14 << 24) | 0b10),        # "other Security state" Group 1
        ("ICC_ASGI1R_EL1", (5 << 24) | 0b10),
        ("ICC_SGI1R_EL1", (6 << 24) | (1 << 16) | 0b1),  # Aff1 = 1: no such PE
        ("ICC_SGI1R_EL1", (7 << 24) | 0b100),         # PE 2 does not exist
        ("ICC_SGI1R_EL1", (8 << 24) | (1 << 44) | 0b10),  # RS = 1
    ):
        ops += [SW(0, reg, value), pend0, pend1, *cpu_state(1)]
    ops += [SW(1, "ICC_SGI1R_EL1", (1 << 24) | (1 << 40)), pend0, pend1]
    for _ in range(4):
        ops += [SR(1, "ICC_IAR1_EL1"), SR(1, "ICC_IAR0_EL1")]
    ops += [SR(0, "ICC_IAR1_EL1"), SR(0, "ICC_IAR1_EL1"), *cpu_state(0), *cpu_state(1)]
    return Scenario("sgis", "SGIs through ICC_SGI1R/SGI0R/ASGI1R: targets, IRM, groups, RS",
                    tuple(ops))


def _spi_routing() -> Scenario:
    """SPIs routed by IROUTER; PE 1 tries to acknowledge first each time, so the PE an SPI
    went to shows."""
    ops: list[Op] = [*bring_up(), *spi_setup(
        Spi(60, 0x80, aff=1), Spi(61, 0x80, aff=0), Spi(62, 0x80, aff=0x80000000),
        Spi(63, 0x80, aff=5), Spi(64, 0x80, aff=1, edge=False),
        Spi(65, 0x80, aff=0x80000001))]
    for intid in (60, 61, 62, 63, 64, 65):
        ops += [spi_pend(intid), *cpu_state(0), *cpu_state(1)]
        ops += [SR(1, "ICC_IAR1_EL1"), SR(0, "ICC_IAR1_EL1"), gicd("ISACTIVER1", 0x304),
                gicd("ISACTIVER2", 0x308), gicd("ISPENDR1", 0x204), gicd("ISPENDR2", 0x208),
                SW(0, "ICC_EOIR1_EL1", intid), SW(1, "ICC_EOIR1_EL1", intid),
                gicd("ISACTIVER1", 0x304), gicd("ISACTIVER2", 0x308)]
    # A level SPI made pending by ISPENDR stays pending until ICPENDR (no wire here).
    ops += [gicd("ISPENDR2", 0x208), W(GICD + 0x288, 1), gicd("ISPENDR2", 0x208)]
    return Scenario("spi-routing", "SPIs routed by IROUTER (Aff, IRM, no PE), edge and level",
                    tuple(ops))


def _apr_save_restore() -> Scenario:
    """What IHI 0069 defines for ICC_AP<g>R<n>_EL1: reads after acknowledges and priority
    drops, writing back the value read, restoring a saved value into a register that
    reads 0 (as a context restore does), and the registers absent at 5 priority bits."""
    c = 0
    ops: list[Op] = [*bring_up(), W(sgi(c) + 0x80, 0xFFFFFFFB), sgi_prio(c, 1, 0x40),
                     sgi_prio(c, 2, 0x30), sgi_prio(c, 6, 0x10), W(sgi(c) + 0x100, 0x46),
                     W(sgi(c) + 0x200, 0x2), SR(c, "ICC_IAR1_EL1"), W(sgi(c) + 0x200, 0x4),
                     SR(c, "ICC_IAR0_EL1"), *cpu_state(c), SR(c, "ICC_AP1R0_EL1"),
                     SW(c, "ICC_AP1R0_EL1", 1 << (0x40 >> 3)), SW(c, "ICC_AP0R0_EL1",
                                                                  1 << (0x30 >> 3)),
                     *cpu_state(c), SW(c, "ICC_EOIR0_EL1", 2), *cpu_state(c),
                     SW(c, "ICC_EOIR1_EL1", 1), *cpu_state(c),
                     # A restore: the saved values into registers that read 0.
                     SW(c, "ICC_AP1R0_EL1", (1 << (0x40 >> 3)) | (1 << (0x80 >> 3))),
                     *cpu_state(c), W(sgi(c) + 0x200, 0x2), *cpu_state(c),
                     W(sgi(c) + 0x200, 0x40), *cpu_state(c), SR(c, "ICC_IAR1_EL1"),
                     *cpu_state(c), SW(c, "ICC_EOIR1_EL1", 6), *cpu_state(c),
                     SW(c, "ICC_EOIR1_EL1", 1023), *cpu_state(c),
                     SW(c, "ICC_EOIR1_EL1", 1), *cpu_state(c),
                     SW(c, "ICC_EOIR1_EL1", 1), *cpu_state(c), SR(c, "ICC_IAR1_EL1"),
                     SW(c, "ICC_EOIR1_EL1", 1), *cpu_state(c)]
    ops += [SR(c, f"ICC_AP{g}R{n}_EL1") for g in (0, 1) for n in (1, 2, 3)]
    ops += [SW(c, f"ICC_AP{g}R{n}_EL1", 0) for g in (0, 1) for n in (1, 2, 3)]
    return Scenario("apr-save-restore", "ICC_AP0R0/AP1R0: acknowledge, drop, read back, "
                    "restore; the absent APRs", tuple(ops))


def _apr_unpredictable() -> Scenario:
    """Writing an active-priority register with a value other than the one read (or a
    saved value over 0): UNPREDICTABLE, so a divergence is expected here."""
    c = 0
    ops: list[Op] = [*bring_up(), W(sgi(c) + 0x80, 0xFFFFFFFF), sgi_prio(c, 1, 0x40),
                     W(sgi(c) + 0x100, 0x2), W(sgi(c) + 0x200, 0x2), SR(c, "ICC_IAR1_EL1"),
                     SW(c, "ICC_AP1R0_EL1", 0), *cpu_state(c)]
    return Scenario("apr-unpredictable", "clearing an active priority through ICC_AP1R0_EL1",
                    tuple(ops))


def _lpi_pending_table() -> Scenario:
    """LPIs made pending in the pending table before EnableLPIs (QEMU's enable-time scan;
    the model's pending-table read at EnableLPIs 0 -> 1), then acknowledged one by one."""
    ops: list[Op] = [*bring_up(), *lpi_tables(0), *lpi_tables(1),
                     lpi_config(8192, 0xA0), lpi_config(8200, 0x80),
                     lpi_config(8300, 0x60, enable=False), lpi_config(8201, 0x80),
                     lpi_config(8400, 0x7C), lpi_config(8401, 0x78), lpi_config(9000, 0x20),
                     W(pend(0) + 8192 // 8, 0x01, 1), W(pend(0) + 8200 // 8, 0x03, 1),
                     W(pend(0) + 8300 // 8, 1 << (8300 % 8), 1),
                     W(pend(0) + 8400 // 8, 0x03, 1), W(pend(0) + 9000 // 8, 0x01, 1),
                     W(pend(0) + 65535 // 8, 0x80, 1),
                     *cpu_state(0), enable_lpis(0), gicr(0, "CTLR", 0x0), *cpu_state(0)]
    for intid in (9000, 8401, 8400, 8200, 8201, 8192, 1023):
        ops += [SR(0, "ICC_HPPIR1_EL1"), SR(0, "ICC_IAR1_EL1"), SR(0, "ICC_RPR_EL1"),
                SR(0, "ICC_AP1R0_EL1"), SW(0, "ICC_EOIR1_EL1", intid), *cpu_state(0)]
    # PMR masking of LPIs; an LPI and an SGI at the same priority (ties to the lower INTID).
    ops += [W(sgi(1) + 0x80, 0xFFFFFFFF), sgi_prio(1, 4, 0x80), W(sgi(1) + 0x100, 0x10),
            W(pend(1) + 8192 // 8, 0x01, 1), W(pend(1) + 8201 // 8, 0x02, 1),
            W(sgi(1) + 0x200, 0x10), enable_lpis(1), *cpu_state(1),
            SW(1, "ICC_PMR_EL1", 0x80), *cpu_state(1), SR(1, "ICC_IAR1_EL1"),
            SW(1, "ICC_PMR_EL1", 0xFF)]
    for intid in (4, 8201, 8192, 1023):
        ops += [SR(1, "ICC_IAR1_EL1"), SR(1, "ICC_RPR_EL1"), SW(1, "ICC_EOIR1_EL1", intid)]
    return Scenario("lpi-pending-table", "LPIs pending in the table before EnableLPIs: "
                    "selection, priority (config byte & 0xfc), acknowledge", tuple(ops))


def _lpi_enable_disable() -> Scenario:
    """EnableLPIs 1 -> 0 -> 1 (CES = 1 on both), IDbits too small, PTZ, EnableGrp1 off."""
    ops: list[Op] = [*bring_up(), *lpi_tables(0), lpi_config(8192, 0xA0),
                     lpi_config(8500, 0x40), W(pend(0) + 8192 // 8, 0x01, 1), enable_lpis(0),
                     *cpu_state(0), W(rd(0), 0), gicr(0, "CTLR", 0x0), gicr(0, "CTLR", 0x0),
                     *cpu_state(0), R("pending-byte-8192", pend(0) + 8192 // 8, 1),
                     W(pend(0) + 8500 // 8, 1 << (8500 % 8), 1), enable_lpis(0),
                     *cpu_state(0), SR(0, "ICC_IAR1_EL1"),
                     R("pending-byte-8500", pend(0) + 8500 // 8, 1), W(GICD, 0x1),
                     *cpu_state(0), W(GICD, 0x3), *cpu_state(0),
                     SW(0, "ICC_EOIR1_EL1", 8500)]
    # IDbits = 12 (13 INTID bits: no LPI at all) on PE 1; then PTZ with a non-zero table.
    ops += [*lpi_tables(1, idbits=12), W(pend(1) + 8192 // 8, 0x01, 1), enable_lpis(1),
            *cpu_state(1), W(rd(1), 0), gicr(1, "CTLR", 0x0), gicr(1, "CTLR", 0x0),
            *lpi_tables(1, ptz=True), enable_lpis(1), *cpu_state(1),
            gicr(1, "PENDBASER", 0x78, 8)]
    return Scenario("lpi-enable-disable", "EnableLPIs transitions, IDbits < 13, PTZ, "
                    "EnableGrp1 = 0", tuple(ops))


def _waker_sleep() -> Scenario:
    """An RD put back to sleep (GICR_WAKER.ProcessorSleep = 1, after the CPU interface's
    group enables were cleared, as the architecture requires) with an SGI pending."""
    c = 1
    groups_off = (SW(c, "ICC_IGRPEN0_EL1", 0), SW(c, "ICC_IGRPEN1_EL1", 0))
    ops: list[Op] = [*bring_up(), W(sgi(c) + 0x80, 0xFFFFFFFF), W(sgi(c) + 0x100, 0x8),
                     sgi_prio(c, 3, 0x80), W(sgi(c) + 0x200, 0x8), *cpu_state(c),
                     *groups_off, W(rd(c) + 0x14, 0x2), gicr(c, "WAKER", 0x14),
                     SW(c, "ICC_IGRPEN1_EL1", 1), *cpu_state(c), SR(c, "ICC_IAR1_EL1"),
                     *groups_off, W(rd(c) + 0x14, 0x0), gicr(c, "WAKER", 0x14),
                     SW(c, "ICC_IGRPEN1_EL1", 1), *cpu_state(c), SR(c, "ICC_IAR1_EL1"),
                     SW(c, "ICC_EOIR1_EL1", 3)]
    return Scenario("waker-sleep", "ProcessorSleep = 1: what the CPU interface still sees",
                    tuple(ops))


def _direct_lpi_registers() -> Scenario:
    """Neither side offers Direct LPI here (QEMU has none; the model is built without):
    SETLPIR/CLRLPIR/INVLPIR/INVALLR/SYNCR and GICD_SETSPI_NSR are reserved."""
    ops: list[Op] = [*bring_up(), *lpi_tables(0), lpi_config(8193, 0x40), enable_lpis(0),
                     W(rd(0) + 0x40, 8193, 8), *cpu_state(0), gicr(0, "SETLPIR", 0x40, 8),
                     W(rd(0) + 0xA0, 8193, 8), W(rd(0) + 0xB0, 0, 8),
                     gicr(0, "SYNCR", 0xC0), *spi_setup(Spi(90, 0x40)),
                     W(GICD + 0x40, 90), gicd("ISPENDR2", 0x208), *cpu_state(0)]
    return Scenario("direct-lpi-registers", "Direct LPI and MBI registers absent on both",
                    tuple(ops))


SCENARIOS: tuple[Scenario, ...] = (
    _id_registers(), _gicd_ctlr(), _spi_bit_registers(), _spi_priority_config(), _irouter(),
    _redist_lpi_registers(), _sgi_ppi_registers(), _cpuif_plain(),
    _ack_ties_and_priorities(), _preemption(), _eoimode_dir(), _group0(), _sgis(),
    _spi_routing(), _apr_save_restore(), _apr_unpredictable(), _lpi_pending_table(),
    _lpi_enable_disable(), _direct_lpi_registers(), _waker_sleep(),
)
