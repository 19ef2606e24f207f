"""A hardware-level walkthrough of one Direct LPI, register by register.

It does what a kernel's GICv3 and Direct LPI code would do, with nothing but bus
accesses, physical memory writes and ICC_* system registers: probe the
distributor, wake a redistributor, build the LPI configuration and pending
tables in RAM, program GICR_PROPBASER / GICR_PENDBASER, enable LPIs, configure
one LPI and invalidate it (GICR_INVLPIR, then poll GICR_SYNCR), let a PCI
function DMA-write the INTID into that redistributor's GICR_SETLPIR, and
acknowledge and EOI it on the PE.  Every access is recorded with its value and
decoded fields, and every step checks what the architecture says it must see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from directlpi.hw.events import Event, EventKind
from directlpi.hw.regs import (
    GICD,
    GICR,
    ICC,
    INTID_SPURIOUS,
    LPI_BASE,
    LPI_CFG_ENABLE,
    LPI_CFG_RES1,
    SHARE_INNER,
    CACHE_RaWaWb,
    Field,
    Reg,
)
from directlpi.platform import Platform

DEVICE = "0000:00:01.0"
PROP_TABLE = 0x4010_0000
PEND_TABLE = 0x4020_0000
LPI_PRIORITY = 0xA0


@dataclass
class Access:
    """One register or memory access of the walkthrough."""

    op: str
    """"read", "write", "dma-write", "mrs", "msr" or "mem-write"."""
    register: str
    address: int | None
    value: int
    decoded: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "register": self.register, "address": self.address,
                "value": self.value, "decoded": self.decoded}


@dataclass
class Step:
    title: str
    accesses: list[Access] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok in self.checks)


def decode(reg: Reg, value: int, names: tuple[str, ...] | None = None) -> str:
    """``Field=value`` for the named (or all non-zero) fields of ``reg``."""
    out = []
    for name, f in reg.fields.items():
        if names is not None and name not in names:
            continue
        v = f.get(value)
        if names is None and not v:
            continue
        if name == "Physical_Address":
            out.append(f"{name}={value & f.mask:#x}")
        elif name in ("INTID", "pINTID") or f.width <= 4:
            out.append(f"{name}={v}")
        else:
            out.append(f"{name}={v:#x}")
    return " ".join(out)


class Walkthrough:
    """Runs the steps on a bare platform and records them."""

    def __init__(self, platform: Platform, cpu: int) -> None:
        self.plat = platform
        self.cpu = cpu
        self.steps: list[Step] = []
        self.events: list[Event] = []
        self._step: Step | None = None
        self.id_bits = 0
        self.lpi_bits = 0

    # -- recording helpers ---------------------------------------------------------

    def step(self, title: str) -> Step:
        self._step = Step(title)
        self.steps.append(self._step)
        return self._step

    def _record(self, access: Access) -> None:
        assert self._step is not None
        self._step.accesses.append(access)

    def check(self, what: str, ok: bool) -> None:
        assert self._step is not None
        self._step.checks.append((what, ok))

    def read(self, reg: Reg, base: int, size: int | None = None,
             fields: tuple[str, ...] | None = None) -> int:
        addr = base + reg.offset
        value = self.plat.bus.read(addr, size or reg.size)
        self._record(Access("read", reg.name, addr, value, decode(reg, value, fields)))
        return value

    def write(self, reg: Reg, base: int, value: int, size: int | None = None,
              master: str | None = None) -> None:
        addr = base + reg.offset
        self.plat.bus.write(addr, value, size or reg.size, master=master)
        op = "write" if master is None else "dma-write"
        self._record(Access(op, reg.name, addr, value, decode(reg, value)))

    def poll(self, reg: Reg, base: int, bit: Field, until: int, limit: int = 100) -> int:
        """Read ``reg`` until ``bit`` reads ``until``; returns the number of reads."""
        for n in range(1, limit + 1):
            if bit.get(self.read(reg, base)) == until:
                return n
        return limit + 1

    def mrs(self, reg: Reg) -> int:
        value = self.plat.cpu(self.cpu).read_sysreg(reg.name)
        self._record(Access("mrs", reg.name, None, value, decode(reg, value)))
        return value

    def msr(self, reg: Reg, value: int) -> None:
        self.plat.cpu(self.cpu).write_sysreg(reg.name, value)
        self._record(Access("msr", reg.name, None, value, decode(reg, value)))

    def mem_fill(self, what: str, addr: int, n: int, byte: int) -> None:
        self.plat.memory.fill(addr, n, byte)
        self._record(Access("mem-write", what, addr, byte, f"{n:#x} bytes of {byte:#04x}"))

    # -- the walkthrough ---------------------------------------------------------------

    def run(self) -> bool:
        sub = self.plat.observe(self.events.append, [
            EventKind.DMA_WRITE, EventKind.LPI_PENDING, EventKind.ACK, EventKind.EOI,
            EventKind.INVALIDATE, EventKind.SYNC, EventKind.CONFIG_LOAD,
            EventKind.LPIS_ENABLED, EventKind.BAD_ACCESS, EventKind.UNPREDICTABLE])
        try:
            for part in self._parts():
                part()
        finally:
            sub.cancel()
        return all(s.ok for s in self.steps)

    def _parts(self) -> list[Callable[[], None]]:
        return [self._probe, self._dist_init, self._rd_probe, self._wake, self._tables,
                self._program_basers, self._enable, self._configure_lpi, self._cpuif_init,
                self._msi, self._acknowledge, self._eoi, self._summary]

    def _probe(self) -> None:
        self.step("Probe the distributor")
        d = self.plat.gicd_base
        typer = self.read(GICD.TYPER, d, fields=("ITLinesNumber", "IDbits", "LPIS", "MBIS",
                                                  "num_LPIs"))
        pidr2 = self.plat.bus.read(d + 0xFFE8, 4)
        self._record(Access("read", "GICD_PIDR2", d + 0xFFE8, pidr2,
                            f"ArchRev={(pidr2 >> 4) & 0xF}"))
        self.check("GICv3 (PIDR2.ArchRev = 3)", (pidr2 >> 4) & 0xF == 3)
        self.check("LPIs supported (GICD_TYPER.LPIS)", bool(GICD.TYPER.LPIS.get(typer)))
        self.id_bits = GICD.TYPER.IDbits.get(typer) + 1

    def _dist_init(self) -> None:
        self.step("Enable Group 1 in the distributor (affinity routing is always on)")
        d = self.plat.gicd_base
        self.write(GICD.CTLR, d, GICD.CTLR.EnableGrp1.mask)
        reads = self.poll(GICD.CTLR, d, GICD.CTLR.RWP, 0)
        self.check("GICD_CTLR.RWP cleared", reads <= 100)

    def _rd_probe(self) -> None:
        self.step(f"Find PE {self.cpu}'s redistributor")
        r = self.plat.gicr_base(self.cpu)
        typer = self.read(GICR.TYPER, r, fields=("PLPIS", "DirectLPI", "Last",
                                                 "Processor_Number", "Affinity_Value"))
        mpidr = self.plat.cpu(self.cpu).mpidr
        aff = ((mpidr >> 32) & 0xFF) << 24 | (mpidr & 0xFFFFFF)
        self.check("GICR_TYPER.Affinity_Value matches the PE's MPIDR",
                   GICR.TYPER.Affinity_Value.get(typer) == aff)
        self.check("GICR_TYPER.PLPIS = 1", bool(GICR.TYPER.PLPIS.get(typer)))
        self.check("GICR_TYPER.DirectLPI = 1", bool(GICR.TYPER.DirectLPI.get(typer)))

    def _wake(self) -> None:
        self.step("Wake the redistributor (GICR_WAKER handshake)")
        r = self.plat.gicr_base(self.cpu)
        self.write(GICR.WAKER, r, 0)
        reads = self.poll(GICR.WAKER, r, GICR.WAKER.ChildrenAsleep, 0)
        self.check("ChildrenAsleep reads 0", reads <= 100)

    def _tables(self) -> None:
        bits = min(self.id_bits, 16)
        self.lpi_bits = bits
        self.step(f"Build the LPI tables in RAM ({bits} INTID bits)")
        n_lpis = (1 << bits) - LPI_BASE
        self.mem_fill("LPI config table", PROP_TABLE, n_lpis, LPI_PRIORITY | LPI_CFG_RES1)
        self.mem_fill("LPI pending table", PEND_TABLE, (1 << bits) // 8, 0)
        self.check("pending table is 64 KiB aligned", PEND_TABLE % 0x10000 == 0)

    def _program_basers(self) -> None:
        self.step("Program GICR_PROPBASER and GICR_PENDBASER, then read them back")
        r = self.plat.gicr_base(self.cpu)
        attrs = (GICR.PROPBASER.Shareability.put(SHARE_INNER)
                 | GICR.PROPBASER.InnerCache.put(CACHE_RaWaWb))
        prop = PROP_TABLE | attrs | GICR.PROPBASER.IDbits.put(self.lpi_bits - 1)
        self.write(GICR.PROPBASER, r, prop)
        self.check("PROPBASER reads back", self.read(GICR.PROPBASER, r) == prop)
        pend = PEND_TABLE | attrs
        self.write(GICR.PENDBASER, r, pend)
        self.check("PENDBASER reads back", self.read(GICR.PENDBASER, r) == pend)

    def _enable(self) -> None:
        self.step("Enable LPIs on the redistributor")
        r = self.plat.gicr_base(self.cpu)
        self.write(GICR.CTLR, r, GICR.CTLR.EnableLPIs.mask)
        ctlr = self.read(GICR.CTLR, r)
        self.check("GICR_CTLR.EnableLPIs = 1", bool(GICR.CTLR.EnableLPIs.get(ctlr)))

    def _configure_lpi(self) -> None:
        self.step(f"Enable LPI {LPI_BASE} at priority {LPI_PRIORITY:#x}: property byte, "
                  "then GICR_INVLPIR, then poll GICR_SYNCR")
        r = self.plat.gicr_base(self.cpu)
        byte = LPI_PRIORITY | LPI_CFG_RES1 | LPI_CFG_ENABLE
        self.plat.memory.write(PROP_TABLE, bytes((byte,)))
        self._record(Access("mem-write", f"config byte of {LPI_BASE}", PROP_TABLE, byte,
                            f"Priority={LPI_PRIORITY:#x} Enable=1"))
        self.write(GICR.INVLPIR, r, LPI_BASE)
        reads = self.poll(GICR.SYNCR, r, GICR.SYNCR.Busy, 0)
        self.check("GICR_SYNCR.Busy was seen and then cleared", 2 <= reads <= 100)

    def _cpuif_init(self) -> None:
        self.step(f"Set up PE {self.cpu}'s CPU interface")
        self.mrs(ICC.SRE)
        self.msr(ICC.PMR, 0xF0)
        self.msr(ICC.BPR1, 0)
        self.msr(ICC.CTLR, 0)
        self.msr(ICC.IGRPEN1, 1)
        self.check("ICC_PMR_EL1 lets priority 0xa0 through",
                   self.plat.cpu(self.cpu).read_sysreg(ICC.PMR.name) > LPI_PRIORITY)

    def _msi(self) -> None:
        r = self.plat.gicr_base(self.cpu)
        self.step(f"PCI function {DEVICE} signals its MSI: a 32-bit DMA write of {LPI_BASE} "
                  f"to GICR_SETLPIR at {r + GICR.SETLPIR.offset:#x}")
        self.write(GICR.SETLPIR, r, LPI_BASE, size=4, master=DEVICE)
        hppi = self.mrs(ICC.HPPIR1)
        self.check(f"ICC_HPPIR1_EL1 = {LPI_BASE}", hppi == LPI_BASE)
        self.check("the PE's IRQ line is asserted", self.plat.cpu(self.cpu).irq_pending())

    def _acknowledge(self) -> None:
        self.step("The PE takes the interrupt: ICC_IAR1_EL1")
        intid = self.mrs(ICC.IAR1)
        self.check(f"acknowledged INTID {LPI_BASE}", intid == LPI_BASE)
        rpr = self.mrs(ICC.RPR)
        self.check(f"running priority {LPI_PRIORITY:#x}", rpr == LPI_PRIORITY)
        self.check("the LPI is no longer pending",
                   self.plat.cpu(self.cpu).read_sysreg(ICC.HPPIR1.name) == INTID_SPURIOUS)

    def _eoi(self) -> None:
        self.step("End of interrupt: ICC_EOIR1_EL1 (priority drop; LPIs have no active state)")
        self.msr(ICC.EOIR1, LPI_BASE)
        self.check("running priority back to idle (0xff)", self.mrs(ICC.RPR) == 0xFF)
        self.check("nothing else pending: IAR1 reads 1023",
                   self.mrs(ICC.IAR1) == INTID_SPURIOUS)

    def _summary(self) -> None:
        self.step("What the hardware observed")
        kinds = {k: sum(1 for e in self.events if e.kind is k) for k in EventKind}
        dma = [e for e in self.events if e.kind is EventKind.DMA_WRITE]
        self.check("one DMA write, by the PCI function", len(dma) == 1 and dma[0].master == DEVICE)
        self.check("one LPI made pending, acknowledged and EOId",
                   kinds[EventKind.LPI_PENDING] == kinds[EventKind.ACK]
                   == kinds[EventKind.EOI] == 1)
        self.check("no bad or UNPREDICTABLE access",
                   kinds[EventKind.BAD_ACCESS] == kinds[EventKind.UNPREDICTABLE] == 0)

    # -- reports -----------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {
            "platform": {"cpus": self.plat.num_cpus, "lpi_id_bits": self.id_bits,
                         "its": False, "target_cpu": self.cpu},
            "steps": [{"title": s.title, "ok": s.ok,
                       "accesses": [a.as_dict() for a in s.accesses],
                       "checks": [{"check": c, "ok": ok} for c, ok in s.checks]}
                      for s in self.steps],
            "events": [str(e) for e in self.events],
            "ok": all(s.ok for s in self.steps),
        }

    def render(self) -> str:
        lines = [f"Direct LPI hardware walkthrough: GICv3 without an ITS, {self.plat.num_cpus} "
                 f"PEs, target PE {self.cpu}", ""]
        for n, s in enumerate(self.steps, 1):
            lines.append(f"[{n:2}] {s.title}")
            for a in s.accesses:
                where = f"{a.address:#012x}" if a.address is not None else " " * 12
                lines.append(f"     {a.op:<9} {a.register:<20} {where}  {a.value:#010x}  "
                             f"{a.decoded}".rstrip())
            for c, ok in s.checks:
                lines.append(f"     {'ok  ' if ok else 'FAIL'} {c}")
        lines.append("")
        lines.append("events:")
        lines.extend(f"     {e}" for e in self.events)
        lines.append("")
        ok = all(s.ok for s in self.steps)
        lines.append("walkthrough: " + ("every check passed" if ok else "CHECKS FAILED"))
        return "\n".join(lines)


def run_walkthrough(cpus: int = 8, cpu: int = 1) -> Walkthrough:
    """Build the default hardware and run the walkthrough on PE ``cpu``."""
    from directlpi.errors import ConfigError
    plat = Platform.bare(cpus=cpus)
    if not -cpus <= cpu < cpus:
        raise ConfigError(f"--cpu {cpu}: the platform has PEs 0..{cpus - 1} (or -1..-{cpus} "
                          "from the end, as in scenarios)")
    cpu %= cpus
    w = Walkthrough(plat, cpu)
    w.run()
    return w
