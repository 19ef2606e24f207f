"""GICv3 Distributor (GICD): SPIs, their routing, and message-based SPIs (Arm IHI 0069).

Choices this module makes where the architecture allows several:

* **Security states** (machine option ``security_states``).  One (the default):
  GICD_CTLR.DS is RAO/WI; Secure-only registers (GICD_SETSPI_SR, GICD_CLRSPI_SR,
  IGRPMODR, NSACR) are RAZ/WI; interrupts are Group 0 or Group 1 (IGROUPR).  Two
  (DS = 0): DS is RAZ/WI (not programmable, one of the two allowed choices), ARE_S and
  ARE_NS are RAO/WI; GICD_TYPER.SecurityExtn is 1; an interrupt is Group 0, Secure
  Group 1 or Non-secure Group 1 (IGROUPR, IGRPMODR; IGROUPR = 1 with IGRPMODR = 1 is
  Non-secure Group 1, as QEMU and gem5).  A Non-secure access (``GIC.secure`` False)
  sees GICD_CTLR's Non-secure view (EnableGrp1A, ARE_NS, RWP); IGROUPR, IGRPMODR and
  NSACR are RAZ/WI to it; a Secure SPI's bits and fields are RAZ/WI to it except where
  GICD_NSACR grants access (ISPENDR and SETSPI_NSR from 1, ICPENDR, CLRSPI_NSR and
  reads of I[SC]ACTIVER from 2, IROUTER at 3); a Non-secure SPI's priority is written
  ``0x80 | value >> 1`` and read ``value << 1`` (the Non-secure view of priorities).
  GICD_SETSPI_SR and GICD_CLRSPI_SR act on Secure writes only.
* **Affinity routing only.**  GICD_CTLR.ARE is RAO/WI; legacy registers
  (ITARGETSR, SGIR, {C,S}PENDSGIR) are RAZ/WI; GICD registers for INTIDs 0-31
  are RAZ/WI (SGIs and PPIs live in the redistributors).
* **1 of N routing** (IROUTER.Interrupt_Routing_Mode = 1) is supported: the SPI is
  offered to every PE whose redistributor is awake and whose CPU interface has
  the SPI's group enabled; the first PE to acknowledge it takes it.  With the
  machine option ``no1n`` (GICD_TYPER.No1N = 1, as QEMU) it is not: IRM is RAZ/WI
  ("might be RAZ/WI" in implementations without 1 of N distribution), so the SPI
  goes to the PE its affinity fields name.
* **RWP** reads 1 exactly once after a write to GICD_CTLR or GICD_ICENABLER<n>,
  so a driver that never polls it is visible in a trace (machine option
  ``busy_reads``: that many reads; 0 completes at once, as QEMU).
* **Identification** (machine option ``iidr``): GICD_IIDR reads IIDR_VALUE unless a
  board names another value (QEMU: 0x43B).
* **Message-based SPIs** (GICD_TYPER.MBIS): GICD_SETSPI_NSR makes an edge SPI
  pending (a latch, cleared by acknowledge, ICPENDR or CLRSPI) and asserts a
  level SPI (pending until GICD_CLRSPI_NSR).  Without MBIS both are reserved.

State is indexed by INTID (element 37 is INTID 37).  The per-CPU *ready* sets
(pending, enabled, not active, routed there) are derived state, updated
incrementally whenever one SPI's state changes.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Final

from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.mmio import MmioFrame
from directlpi.hw.regs import (
    FIRST_SPI,
    GICD,
    GICD_CTLR_NS,
    GICD_CTLR_S,
    ID_REGISTER_VALUES,
    IIDR_VALUE,
    MAX_SPI,
    Reg,
    irouter_affinity,
)

if TYPE_CHECKING:
    from directlpi.hw.gic import GIC

NOT_READY: Final = -3
UNROUTED: Final = -2
ANY_PE: Final = -1
NO_PENDING: Final = 1 << 40
"""Sort key meaning "nothing pending"; keys are ``priority << 24 | INTID``."""

_IROUTER_WRITABLE: Final = (
    GICD.IROUTER.Aff0.mask | GICD.IROUTER.Aff1.mask | GICD.IROUTER.Aff2.mask
    | GICD.IROUTER.Aff3.mask | GICD.IROUTER.Interrupt_Routing_Mode.mask
)
_IRM: Final = GICD.IROUTER.Interrupt_Routing_Mode.mask
_GRP0: Final = GICD.CTLR.EnableGrp0.mask
_GRP1: Final = GICD.CTLR.EnableGrp1.mask
_CTLR_FIXED: Final = GICD.CTLR.ARE.mask | GICD.CTLR.DS.mask
_S_ENABLES: Final = (GICD_CTLR_S.EnableGrp0.mask | GICD_CTLR_S.EnableGrp1NS.mask
              | GICD_CTLR_S.EnableGrp1S.mask)
_S_FIXED: Final = GICD_CTLR_S.ARE_S.mask | GICD_CTLR_S.ARE_NS.mask
_S_G1NS: Final = GICD_CTLR_S.EnableGrp1NS.mask
_NS_ARE: Final = GICD_CTLR_NS.ARE_NS.mask
G0, G1NS, G1S = 0, 1, 2
"""Group codes (``Distributor.group``): Group 0, (Non-secure) Group 1, Secure Group 1.
Group enable masks use bit ``code``: bit 0 Group 0, bit 1 Group 1 (Non-secure), bit 2
Secure Group 1 -- the bits of GICD_CTLR's Secure view."""


def ns_priority_write(value: int) -> int:
    """The priority a Non-secure write of ``value`` stores (two Security states)."""
    return 0x80 | (value >> 1)


def ns_priority_read(stored: int) -> int:
    """What a Non-secure read of priority ``stored`` returns (two Security states)."""
    return (stored << 1) & 0xFF


class Distributor(MmioFrame):
    """The GICD frame and the SPI state it owns."""

    REGISTERS = GICD

    __slots__ = (
        "_busy_reads",
        "_ctlr",
        "_gic",
        "_iidr",
        "_irouter_writable",
        "_mbis",
        "_rwp",
        "_spi_end",
        "_two",
        "_typer",
        "active",
        "edge",
        "en_grp",
        "enabled",
        "group",
        "grpmod",
        "kicked",
        "latch",
        "line",
        "msi_level",
        "nsacr",
        "prio",
        "prio_mask",
        "ready",
        "ready_any",
        "route",
        "target",
        "where",
    )

    def __init__(self, gic: GIC, hub: EventHub, *, spis: int, lpi_id_bits: int, lpis: bool,
                 mbis: bool, priority_bits: int) -> None:
        self._gic = gic
        self.kicked = gic.kicked
        self._mbis = mbis
        lines = spis + FIRST_SPI
        it_lines = (lines + 31) // 32 - 1
        #: One past the last implemented SPI INTID.
        self._spi_end = min(lines, MAX_SPI + 1)
        id_bits = lpi_id_bits if lpis else 10
        self._typer = (
            GICD.TYPER.ITLinesNumber.put(it_lines)
            | GICD.TYPER.MBIS.put(int(mbis))
            | GICD.TYPER.LPIS.put(int(lpis))
            | GICD.TYPER.IDbits.put(id_bits - 1)
            | GICD.TYPER.A3V.put(1)
        )
        super().__init__("GICD", hub)
        self._ctlr = _CTLR_FIXED
        self._rwp = 0
        #: Group enables, one bit per group code (bit 0 Group 0, bit 1 Group 1 or
        #: Non-secure Group 1, bit 2 Secure Group 1).
        self.en_grp = 0
        self._two = False
        self.prio_mask = (0xFF << (8 - priority_bits)) & 0xFF
        n = MAX_SPI + 1
        #: Group code of each SPI (G0, G1NS, G1S); IGROUPR reads 1 where it is G1NS.
        self.group = bytearray(n)
        #: IGRPMODR bits as written (two Security states only).
        self.grpmod = bytearray(n)
        #: GICD_NSACR field of each SPI (two Security states only).
        self.nsacr = bytearray(n)
        self.enabled = bytearray(n)
        self.latch = bytearray(n)
        self.active = bytearray(n)
        self.edge = bytearray(n)
        self.line = bytearray(n)
        self.msi_level = bytearray(n)
        self.prio = bytearray(n)
        self.route = [0] * n
        #: Target PE index of each SPI per its IROUTER (ANY_PE, UNROUTED).
        self.target = [UNROUTED] * n
        for i in range(FIRST_SPI, self._spi_end):
            self.target[i] = self._route_target(0)
        #: Where each SPI is listed: a PE index, ANY_PE, or NOT_READY.
        self.where = [NOT_READY] * n
        self.ready: list[set[int]] = [set() for _ in range(gic.num_cpus)]
        self.ready_any: set[int] = set()
        self._iidr = IIDR_VALUE
        self._busy_reads = 1
        self._irouter_writable = _IROUTER_WRITABLE

    def set_implementation(self, *, no1n: bool, iidr: int, busy_reads: int,
                           priority_bits: int) -> None:
        """The IMPLEMENTATION DEFINED choices of a board (machine options of the same names,
        applied at reset; see the module docstring).  ``priority_bits``: the bits of
        GICD_IPRIORITYR<n> implemented (``dist_priority_bits``)."""
        self.prio_mask = (0xFF << (8 - priority_bits)) & 0xFF
        self._typer = GICD.TYPER.No1N.replace(self._typer, int(no1n))
        self._irouter_writable = _IROUTER_WRITABLE & ~_IRM if no1n else _IROUTER_WRITABLE
        self._iidr = iidr
        self._busy_reads = busy_reads

    def set_two_states(self) -> None:
        """Reset with two Security states (GICD_CTLR.DS = 0; see the module docstring)."""
        self._two = True
        self._ctlr = _S_FIXED
        self._typer = GICD.TYPER.SecurityExtn.replace(self._typer, 1)

    def _ns(self) -> bool:
        """Whether the access being made is Non-secure with two Security states."""
        return self._two and not self._gic.secure

    def _ns_bits(self, n: int, need: int) -> int:
        """Bits of 32-SPI word ``n`` a Non-secure access reaches: Non-secure Group 1 SPIs,
        and Secure ones whose GICD_NSACR field is at least ``need`` (0: none are)."""
        base = 32 * n
        group = self.group
        nsacr = self.nsacr
        value = 0
        for b in range(32):
            i = base + b
            if i < self._spi_end and (group[i] == G1NS or (need and nsacr[i] >= need)):
                value |= 1 << b
        return value

    def _ns_blocked(self, i: int, need: int) -> bool:
        """A Non-secure access to SPI ``i`` that GICD_NSACR does not let through."""
        return (self._two and not self._gic.secure and self.group[i] != G1NS
                and not (need and self.nsacr[i] >= need))

    # -- configuration of the dispatch tables --------------------------------

    def _table_key(self) -> Hashable:
        return (self._mbis, self._spi_end)

    def _has_feature(self, feature: str) -> bool:
        return not feature or (feature == "mbis" and self._mbis)

    def _indices(self, attr: str, reg: Reg) -> range:
        end = self._spi_end
        if attr == "IROUTER":
            return range(FIRST_SPI, end)
        if attr == "IPRIORITYR":
            return range(FIRST_SPI // 4, (end + 3) // 4)
        if attr == "ICFGR":
            return range(FIRST_SPI // 16, (end + 15) // 16)
        if attr in ("ITARGETSR",):
            return range((end + 3) // 4)
        if attr == "NSACR":
            return range((end + 15) // 16)
        if attr in ("CPENDSGIR", "SPENDSGIR", "IDREGS"):
            return range(reg.count)
        return range(1, (end + 31) // 32)

    def _raz_indices(self, attr: str, reg: Reg) -> range:
        # Registers for INTIDs 0-31 are RAZ/WI with affinity routing (banked in the RDs).
        if attr in ("IPRIORITYR",):
            return range(FIRST_SPI // 4)
        if attr == "ICFGR":
            return range(FIRST_SPI // 16)
        if attr in ("IGROUPR", "ISENABLER", "ICENABLER", "ISPENDR", "ICPENDR", "ISACTIVER",
                    "ICACTIVER", "IGRPMODR"):
            return range(1)
        return range(0)

    # -- derived state --------------------------------------------------------

    def _route_target(self, irouter: int) -> int:
        if irouter & _IRM:
            return ANY_PE
        return self._gic.cpu_by_affinity.get(irouter_affinity(irouter), UNROUTED)

    def is_pending(self, i: int) -> bool:
        """Pending state of SPI ``i`` as GICD_ISPENDR reports it."""
        return bool(self.latch[i] or (not self.edge[i] and (self.line[i] or self.msi_level[i])))

    def _update(self, i: int) -> None:
        """Recompute where SPI ``i`` is offered (no CPU is signalled: they poll on demand)."""
        if self.enabled[i] and not self.active[i] and self.is_pending(i):
            new = self.target[i]
            if new == UNROUTED:
                new = NOT_READY
        else:
            new = NOT_READY
        old = self.where[i]
        if old == new:
            return
        if old == ANY_PE:
            self.ready_any.discard(i)
        elif old >= 0:
            self.ready[old].discard(i)
        if new == ANY_PE:
            self.ready_any.add(i)
            self._gic.kick_all()
        elif new >= 0:
            self.ready[new].add(i)
            self.kicked.add(new)
        self.where[i] = new

    def retarget_all(self) -> None:
        """Re-resolve every IROUTER (after the set of PEs changed)."""
        for i in range(FIRST_SPI, self._spi_end):
            self.target[i] = self._route_target(self.route[i])
            self._update(i)

    def best_key(self, cpu: int, groups: int) -> int:
        """Highest priority ready SPI for ``cpu`` among enabled ``groups`` (a 2-bit mask)."""
        best = NO_PENDING
        prio = self.prio
        group = self.group
        for pool in (self.ready[cpu], self.ready_any):
            for i in pool:
                if not (groups >> group[i]) & 1:
                    continue
                k = (prio[i] << 24) | i
                if k < best:
                    best = k
        return best

    def valid_spi(self, i: int) -> bool:
        return FIRST_SPI <= i < self._spi_end

    # -- actions of the CPU interfaces and of wired devices ------------------

    def acknowledge(self, i: int) -> None:
        """Pending -> active (an edge latch clears; a level SPI stays pending while asserted)."""
        self.active[i] = 1
        self.latch[i] = 0
        self._update(i)

    def deactivate(self, i: int) -> bool:
        if not self.active[i]:
            return False
        self.active[i] = 0
        self._update(i)
        return True

    def set_line(self, i: int, level: bool) -> None:
        """Drive the interrupt input of SPI ``i`` (a wired device)."""
        old = self.line[i]
        self.line[i] = 1 if level else 0
        if level and not old:
            was = self.is_pending(i)
            if self.edge[i]:
                self.latch[i] = 1
            self._update(i)
            if not was and self._hub.on[EventKind.SPI_PENDING]:
                self._hub.emit(Event(EventKind.SPI_PENDING, "GICD", intid=i, reason="line"))
        elif old and not level:
            self._update(i)

    # -- register handlers ----------------------------------------------------

    def _r_CTLR(self) -> int:
        value = self._ctlr
        if self._two and not self._gic.secure:
            value = (value & _S_G1NS) | (_NS_ARE if value & GICD_CTLR_S.ARE_NS.mask else 0)
        if self._rwp:
            self._rwp -= 1
            value |= GICD.CTLR.RWP.mask
        return value

    def _w_CTLR(self, value: int) -> None:
        if self._two:
            if self._gic.secure:
                self._ctlr = _S_FIXED | (value & _S_ENABLES)
            else:                       # the Non-secure view: EnableGrp1A only
                self._ctlr = (self._ctlr & ~_S_G1NS) | (value & _S_G1NS)
            self.en_grp = self._ctlr & 7
        else:
            self._ctlr = _CTLR_FIXED | (value & (_GRP0 | _GRP1))
            self.en_grp = (1 if value & _GRP0 else 0) | (2 if value & _GRP1 else 0)
        self._rwp = self._busy_reads
        self._gic.kick_all()

    def _r_TYPER(self) -> int:
        return self._typer

    def _r_IIDR(self) -> int:
        return self._iidr

    def _r_TYPER2(self) -> int:
        return 0

    def _w_SETSPI_NSR(self, value: int) -> None:
        i = GICD.SETSPI_NSR.INTID.get(value)
        if self._two and self.valid_spi(i) and self._ns_blocked(i, 1):
            self._ignored(i, "secure-spi", f"a Non-secure GICD_SETSPI_NSR names Secure SPI {i} "
                          "and GICD_NSACR does not allow it: no effect", "GICD_SETSPI_NSR")
            return
        self.message_spi(i, "GICD_SETSPI_NSR")

    def _r_SETSPI_SR(self) -> int:
        return 0

    def _r_CLRSPI_SR(self) -> int:
        return self._r_SETSPI_SR()

    def _w_SETSPI_SR(self, value: int) -> None:
        """Secure writes only (two Security states): any SPI, as GICD_SETSPI_NSR."""
        if self._two and self._gic.secure:
            self.message_spi(GICD.SETSPI_SR.INTID.get(value), "GICD_SETSPI_SR")

    def _w_CLRSPI_SR(self, value: int) -> None:
        if self._two and self._gic.secure:
            self._clrspi(GICD.CLRSPI_SR.INTID.get(value), "GICD_CLRSPI_SR")

    def message_spi(self, i: int, register: str) -> None:
        """A message-based SPI: what a write of INTID ``i`` to ``register`` (GICD_SETSPI_NSR,
        or a GICv2m frame's MSI_SETSPI_NS) does -- the SPI becomes pending (latched when
        edge-triggered), or the write is ignored and recorded."""
        if not self.valid_spi(i):
            self._hub.report(Event(EventKind.IGNORED, "GICD", intid=i, master=self._hub.requester,
                                   reason="invalid-spi", register=register,
                                   detail=f"{register} names INTID {i}, not an implemented SPI"))
            return
        if self.is_pending(i):
            self._hub.report(Event(EventKind.IGNORED, "GICD", intid=i, master=self._hub.requester,
                                   reason="already-pending", register=register,
                                   detail=f"{register}: SPI {i} is already pending"))
            return
        if self.edge[i]:
            self.latch[i] = 1
        else:
            self.msi_level[i] = 1
        self._update(i)
        if self._hub.on[EventKind.SPI_PENDING]:
            self._hub.emit(Event(EventKind.SPI_PENDING, "GICD", intid=i, reason="setspi",
                                 master=self._hub.requester))

    def _w_CLRSPI_NSR(self, value: int) -> None:
        i = GICD.CLRSPI_NSR.INTID.get(value)
        if self._two and self.valid_spi(i) and self._ns_blocked(i, 2):
            self._ignored(i, "secure-spi", f"a Non-secure GICD_CLRSPI_NSR names Secure SPI {i} "
                          "and GICD_NSACR does not allow it: no effect", "GICD_CLRSPI_NSR")
            return
        self._clrspi(i, "GICD_CLRSPI_NSR")

    def _clrspi(self, i: int, register: str) -> None:
        name = register.removeprefix("GICD_")
        if not self.valid_spi(i):
            self._ignored(i, "invalid-spi", f"{name} names INTID {i}, not an implemented SPI",
                          register)
            return
        if not self.is_pending(i):
            self._ignored(i, "not-pending", f"{name}: SPI {i} is not pending", register)
            return
        self._clear_pending(i, "clrspi")

    def _clear_pending(self, i: int, reason: str) -> None:
        """Drop the latch and an MBI-asserted level (a wired level input still asserted
        keeps a level SPI pending)."""
        was = self.is_pending(i)
        self.latch[i] = 0
        self.msi_level[i] = 0
        self._update(i)
        if was and not self.is_pending(i) and self._hub.on[EventKind.SPI_CLEARED]:
            self._hub.emit(Event(EventKind.SPI_CLEARED, "GICD", intid=i, reason=reason))

    def _ignored(self, i: int, reason: str, detail: str, register: str) -> None:
        self._hub.report(Event(EventKind.IGNORED, "GICD", intid=i, reason=reason, detail=detail,
                               register=register))

    def _bits(self, arr: bytearray, n: int) -> int:
        base = 32 * n
        value = 0
        for b in range(32):
            i = base + b
            if i < self._spi_end and arr[i]:
                value |= 1 << b
        return value

    def _spis_in(self, n: int, value: int) -> list[int]:
        base = 32 * n
        return [base + b for b in range(32) if (value >> b) & 1 and base + b < self._spi_end]

    def _r_IGROUPR(self, n: int) -> int:
        if self._two and not self._gic.secure:
            return 0
        base = 32 * n
        group = self.group
        return sum(1 << b for b in range(32) if base + b < self._spi_end
                   and group[base + b] == G1NS)

    def _w_IGROUPR(self, n: int, value: int) -> None:
        if self._two and not self._gic.secure:
            return
        base = 32 * n
        for b in range(32):
            i = base + b
            if i < self._spi_end:
                self.group[i] = G1NS if (value >> b) & 1 else (G1S if self.grpmod[i] else G0)
        self._gic.kick_all()

    def _r_IGRPMODR(self, n: int) -> int:
        if not self._two or not self._gic.secure:
            return 0
        return self._bits(self.grpmod, n)

    def _w_IGRPMODR(self, n: int, value: int) -> None:
        if not self._two or not self._gic.secure:
            return
        base = 32 * n
        for b in range(32):
            i = base + b
            if i < self._spi_end:
                self.grpmod[i] = (value >> b) & 1
                if self.group[i] != G1NS:
                    self.group[i] = G1S if self.grpmod[i] else G0
        self._gic.kick_all()

    def _r_NSACR(self, n: int) -> int:
        if not self._two or not self._gic.secure:
            return 0
        base = 16 * n
        return sum(self.nsacr[base + k] << (2 * k) for k in range(16)
                   if FIRST_SPI <= base + k < self._spi_end)

    def _w_NSACR(self, n: int, value: int) -> None:
        if not self._two or not self._gic.secure:
            return
        base = 16 * n
        for k in range(16):
            if FIRST_SPI <= base + k < self._spi_end:
                self.nsacr[base + k] = (value >> (2 * k)) & 3

    def _r_ISENABLER(self, n: int) -> int:
        value = self._bits(self.enabled, n)
        return value & self._ns_bits(n, 0) if self._two and not self._gic.secure else value

    def _r_ICENABLER(self, n: int) -> int:
        return self._r_ISENABLER(n)

    def _ns_filter(self, n: int, value: int, need: int) -> int:
        """``value`` written to word ``n``, less what a Non-secure access may not reach."""
        return value & self._ns_bits(n, need) if self._two and not self._gic.secure else value

    def _w_ISENABLER(self, n: int, value: int) -> None:
        value = self._ns_filter(n, value, 0)
        for i in self._spis_in(n, value):
            self.enabled[i] = 1
            self._update(i)

    def _w_ICENABLER(self, n: int, value: int) -> None:
        value = self._ns_filter(n, value, 0)
        for i in self._spis_in(n, value):
            self.enabled[i] = 0
            self._update(i)
        self._rwp = self._busy_reads

    def _pending_bits(self, n: int) -> int:
        base = 32 * n
        value = 0
        for b in range(32):
            i = base + b
            if i < self._spi_end and self.is_pending(i):
                value |= 1 << b
        return value

    def _r_ISPENDR(self, n: int) -> int:
        return self._ns_filter(n, self._pending_bits(n), 1)

    def _r_ICPENDR(self, n: int) -> int:
        return self._ns_filter(n, self._pending_bits(n), 2)

    def _w_ISPENDR(self, n: int, value: int) -> None:
        value = self._ns_filter(n, value, 1)
        for i in self._spis_in(n, value):
            was = self.is_pending(i)
            self.latch[i] = 1
            self._update(i)
            if not was and self._hub.on[EventKind.SPI_PENDING]:
                self._hub.emit(Event(EventKind.SPI_PENDING, "GICD", intid=i, reason="ispendr"))

    def _w_ICPENDR(self, n: int, value: int) -> None:
        value = self._ns_filter(n, value, 2)
        for i in self._spis_in(n, value):
            self._clear_pending(i, "icpendr")

    def _r_ISACTIVER(self, n: int) -> int:
        return self._ns_filter(n, self._bits(self.active, n), 2)

    def _r_ICACTIVER(self, n: int) -> int:
        return self._r_ISACTIVER(n)

    def _w_ISACTIVER(self, n: int, value: int) -> None:
        value = self._ns_filter(n, value, 0)
        for i in self._spis_in(n, value):
            self.active[i] = 1
            self._update(i)

    def _w_ICACTIVER(self, n: int, value: int) -> None:
        value = self._ns_filter(n, value, 0)
        for i in self._spis_in(n, value):
            self.active[i] = 0
            self._update(i)

    def _r_IPRIORITYR(self, n: int) -> int:
        p = self.prio
        base = 4 * n
        if self._two and not self._gic.secure:
            return sum(ns_priority_read(p[base + k]) << (8 * k) for k in range(4)
                       if base + k < self._spi_end and self.group[base + k] == G1NS)
        return sum(p[base + k] << (8 * k) for k in range(4) if base + k < self._spi_end)

    def _w_IPRIORITYR(self, n: int, value: int) -> None:
        base = 4 * n
        ns = self._two and not self._gic.secure
        for k in range(4):
            i = base + k
            if FIRST_SPI <= i < self._spi_end:
                v = (value >> (8 * k)) & 0xFF
                if ns:
                    if self.group[i] != G1NS:
                        continue                # a Secure SPI's priority: RAZ/WI
                    v = ns_priority_write(v)
                self.prio[i] = v & self.prio_mask
        self._gic.kick_all()

    def _r_ICFGR(self, n: int) -> int:
        base = 16 * n
        value = 0
        for k in range(16):
            i = base + k
            if i < self._spi_end and self.edge[i] and not self._ns_blocked(i, 0):
                value |= 2 << (2 * k)
        return value

    def _w_ICFGR(self, n: int, value: int) -> None:
        base = 16 * n
        for k in range(16):
            i = base + k
            if FIRST_SPI <= i < self._spi_end and not self._ns_blocked(i, 0):
                self.edge[i] = (value >> (2 * k + 1)) & 1
                self._update(i)

    def _r_IROUTER(self, n: int) -> int:
        return 0 if self._two and self._ns_blocked(n, 3) else self.route[n]

    def _w_IROUTER(self, n: int, value: int) -> None:
        if self._two and self._ns_blocked(n, 3):
            return
        value &= self._irouter_writable
        self.route[n] = value
        self.target[n] = self._route_target(value)
        self._update(n)

    def _r_IDREGS(self, n: int) -> int:
        return ID_REGISTER_VALUES[0xFFD0 + 4 * n]
