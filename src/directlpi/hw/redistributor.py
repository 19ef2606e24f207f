"""GICv3 Redistributor (GICR): LPIs, Direct LPI, and the SGI/PPI frame of one PE (Arm IHI 0069).

Choices this module makes where the architecture allows several (each one
chosen so that a driver bug shows up instead of hiding):

* **Configuration caching (strict).**  The RD caches LPI configuration bytes.
  It reads an LPI's byte from the table at GICR_PROPBASER the first time it
  needs it (the LPI becomes pending, by SETLPIR or from the pending table) and
  then keeps using that copy.  Only GICR_INVLPIR / GICR_INVALLR (or enabling
  LPIs again) make it read memory again, and they read it *at the time of the
  invalidation*: a driver that writes the property table without invalidating,
  or invalidates before writing, sees the old configuration.
* **SYNCR.Busy** reads 1 exactly once after every CLRLPIR, INVLPIR or INVALLR, then
  0 (a SYNC event marks the completion a driver observed).  The operation itself
  has taken effect when the write completes.
* **Pending state.**  While EnableLPIs is 1 the RD keeps LPI pending state
  internally and does not write the pending table.  At EnableLPIs 0 -> 1 it reads
  the table (unless PENDBASER.PTZ was written as 1); at 1 -> 0 it writes its
  state back before GICR_CTLR.RWP reads 0.  So memory holds the pending state
  exactly when LPIs are off and RWP has been seen 0.  The first 1 KiB of the
  table (INTIDs 0-8191) is IMPLEMENTATION DEFINED: it is neither read nor
  written, and a non-zero first 1 KiB at enable is reported as UNPREDICTABLE.
* **EnableLPIs** cannot be cleared once set unless the platform is built with
  ``lpis_clearable=True`` (GICR_CTLR.CES then reads 1).  A clear of a
  non-clearable EnableLPIs is an IGNORED event.
* **UNPREDICTABLE writes are ignored and recorded:** PROPBASER/PENDBASER while
  EnableLPIs is 1 or RWP is 1; setting EnableLPIs while RWP is 1, while
  PROPBASER or PENDBASER still hold their UNKNOWN reset value, or with a
  PROPBASER that differs from another enabled RD's (GICR_TYPER.CommonLPIAff = 0:
  all RDs share one configuration table; machine option ``common_lpi_aff`` = n > 0:
  the RDs whose PEs share affinity levels 3..4-n do, as QEMU's CommonLPIAff = 1).
* **Busy flags** (machine option ``busy_reads``, default 1): GICR_CTLR.RWP after a
  clear of EnableLPIs and GICR_WAKER.ChildrenAsleep after a ProcessorSleep change
  read "in progress" that many times; 0 completes at once, as QEMU.  GICR_IIDR reads
  the machine option ``iidr``.
* **Injected faults** (machine options, off by default, drawn from the RD's own
  generator seeded from ``fault_seed``): ``syncr_stuck`` keeps SYNCR.Busy at 1 for N
  extra reads after an operation it hits (``syncr_stuck_rate``), or for ever (-1) -- the
  operation has still taken effect, only its completion is never reported, so a driver
  must give up (ETIMEDOUT) and cannot tell whether it took; ``cache_refill`` makes the RD
  drop its configuration cache and reload it from the property table, at an LPI made
  pending or a SYNCR read (a refill the architecture allows at any time: a driver that
  relies on a stale cached copy is caught, and one that forgot an invalidation may be
  hidden, so the strict default has it off).  The architecture defines no error
  reporting for redistributor registers (no GICR error record exists in IHI 0069; RAS
  error records are IMPLEMENTATION DEFINED), so no "RD command error" is injected.
* **GICR_WAKER.ChildrenAsleep** follows ProcessorSleep after one read, so the
  handshake has to be polled.  While ProcessorSleep is 1 nothing is forwarded
  to the CPU interface.
* **Non-coherent RDs** (machine option ``rd_coherent=False``): GICR_PROPBASER.
  Shareability and GICR_PENDBASER.Shareability are fixed as Non-shareable
  (read 0b00 whatever is written; the cacheability fields read back as written),
  and the RD's table accesses do not snoop the PEs' caches (see
  :mod:`directlpi.hw.cache`): a driver must clean what it writes to the tables.
* **No DirectLPI** (per-RD option): SETLPIR, CLRLPIR, INVLPIR, INVALLR and SYNCR
  are reserved on that RD.  Note: the architecture makes these registers
  mandatory when LPIs are supported and there is no ITS, so such a GIC is not
  architecturally valid; the model builds it so that a driver's refusal (R8)
  can be tested.

LPI priority is configuration byte bits [7:2] restricted to the implemented
priority bits -- with two Security states (GICD_CTLR.DS = 0) seen as a Non-secure write
of it, ``0x80 | bits[7:2] >> 1``: LPIs are always Non-secure Group 1 (QEMU's choice,
which Linux 6.12's priorities assume; gem5 does not shift) --; bit 1 is RES1 (a byte
with it clear is reported UNPREDICTABLE when loaded).  The highest priority pending LPI
is found through ``priority << 24 | INTID`` keys with lazy deletion, one heap per priority
(:mod:`~directlpi.hw.lpi_queue`), so acknowledging the highest priority LPI costs the same
however many of other priorities are pending; ties go to the lowest INTID.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable
from typing import TYPE_CHECKING, Final

from directlpi.hw.distributor import NO_PENDING, ns_priority_read, ns_priority_write
from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.lpi_queue import LpiQueue
from directlpi.hw.memory import PAGE_SIZE, PhysicalMemory
from directlpi.hw.mmio import MmioFrame
from directlpi.hw.regs import (
    GICR,
    GICR_SGI,
    ID_REGISTER_VALUES,
    IIDR_VALUE,
    LPI_BASE,
    LPI_CFG_ENABLE,
    LPI_CFG_PRIORITY,
    LPI_CFG_RES1,
    PENDBASER_WRITABLE,
    PENDING_TABLE_RESERVED_BYTES,
    PROPBASER_WRITABLE,
    Reg,
)

if TYPE_CHECKING:
    from directlpi.hw.gic import GIC

_ENABLE_LPIS: Final = GICR.CTLR.EnableLPIs.mask
_CES: Final = GICR.CTLR.CES.mask
_IR: Final = GICR.CTLR.IR.mask
_RWP: Final = GICR.CTLR.RWP.mask
_PROCESSOR_SLEEP: Final = GICR.WAKER.ProcessorSleep.mask
_CHILDREN_ASLEEP: Final = GICR.WAKER.ChildrenAsleep.mask
_PTZ: Final = GICR.PENDBASER.PTZ.mask
_PROP_PA: Final = GICR.PROPBASER.Physical_Address.mask
_PEND_PA: Final = GICR.PENDBASER.Physical_Address.mask
_PROP_IDBITS: Final = GICR.PROPBASER.IDbits

_EV_LPI_PENDING: Final = EventKind.LPI_PENDING
_EV_IGNORED: Final = EventKind.IGNORED


class Redistributor(MmioFrame):
    """The RD_base frame of one PE's redistributor, and its LPI state."""

    REGISTERS = GICR

    __slots__ = (
        "_busy_reads",
        "_cfg",
        "_clearable",
        "_direct",
        "_enabled",
        "_fault_rng",
        "_gic",
        "_iidr",
        "_kicked",
        "_lpi_domain",
        "_lpi_limit",
        "_lpi_prio",
        "_memory",
        "_pend_pa",
        "_pend_unknown",
        "_pend_writable",
        "_pendbaser",
        "_plpis",
        "_prio_bits",
        "_prop_pa",
        "_prop_unknown",
        "_prop_writable",
        "_propbaser",
        "_ptz",
        "_queue",
        "_refill",
        "_rwp",
        "_sleep",
        "_sync_busy",
        "_sync_owed",
        "_syncr_rate",
        "_syncr_stuck",
        "_two",
        "_typer",
        "_waker_busy",
        "cpu",
        "lpi_pending",
        "sgi",
    )

    def __init__(self, gic: GIC, hub: EventHub, memory: PhysicalMemory, *, cpu: int,
                 affinity: int, last: bool, plpis: bool, direct_lpi: bool,
                 lpis_clearable: bool, priority_bits: int, coherent: bool = True) -> None:
        self._plpis = plpis
        self._direct = direct_lpi and plpis
        super().__init__(f"GICR{cpu}", hub)
        self._gic = gic
        self._kicked = gic.kicked
        self._memory = memory
        self.cpu = cpu
        self._clearable = lpis_clearable
        self._typer = (
            GICR.TYPER.PLPIS.put(int(plpis))
            | GICR.TYPER.DirectLPI.put(int(self._direct))
            | GICR.TYPER.Last.put(int(last))
            | GICR.TYPER.Processor_Number.put(cpu)
            | GICR.TYPER.Affinity_Value.put(affinity)
        )
        self._two = False
        self._prio_bits = priority_bits
        #: The priority each configuration byte gives (derived from _prio_bits, _two).
        self._lpi_prio = self._prio_table()
        self._enabled = False
        self._rwp = 0
        self._propbaser = 0
        self._pendbaser = 0
        # PROPBASER and PENDBASER reset to UNKNOWN values: remember that nobody wrote them.
        self._prop_unknown = True
        self._pend_unknown = True
        self._ptz = False
        # A non-coherent RD fixes both Shareability fields as Non-shareable (0b00).
        self._prop_writable = PROPBASER_WRITABLE if coherent else (
            PROPBASER_WRITABLE & ~GICR.PROPBASER.Shareability.mask)
        self._pend_writable = PENDBASER_WRITABLE if coherent else (
            PENDBASER_WRITABLE & ~GICR.PENDBASER.Shareability.mask)
        self._prop_pa = 0
        self._pend_pa = 0
        self._lpi_limit = LPI_BASE
        #: INTIDs of pending LPIs (architectural state while EnableLPIs == 1).
        self.lpi_pending: set[int] = set()
        #: Cached configuration bytes (derived: a copy of memory as last loaded).
        self._cfg: dict[int, int] = {}
        #: Keys of pending, enabled LPIs; may hold stale keys (lazy deletion).
        self._queue = LpiQueue()
        self._sync_busy = 0
        self._sync_owed = False
        self._sleep = True
        self._waker_busy = 0
        self._iidr = IIDR_VALUE
        self._busy_reads = 1
        self._lpi_domain = 0
        # Injected faults (inject_faults): none by default.
        self._syncr_stuck = 0
        self._syncr_rate = 0.0
        self._refill = 0.0
        self._fault_rng = random.Random(0)
        self.sgi = SgiFrame(self, hub, priority_bits)

    def set_implementation(self, *, iidr: int, common_lpi_aff: int, busy_reads: int,
                           priority_bits: int) -> None:
        """The IMPLEMENTATION DEFINED choices of a board (machine options of the same names,
        applied at reset; see the module docstring).  ``priority_bits``: the bits of LPI
        priorities and of GICR_IPRIORITYR<n> implemented (``dist_priority_bits``)."""
        self._iidr = iidr
        self._busy_reads = busy_reads
        self._typer = GICR.TYPER.CommonLPIAff.replace(self._typer, common_lpi_aff)
        affinity = GICR.TYPER.Affinity_Value.get(self._typer)
        self._lpi_domain = affinity >> (32 - 8 * common_lpi_aff) if common_lpi_aff else 0
        self.sgi.prio_mask = (0xFF << (8 - priority_bits)) & 0xFF
        self._prio_bits = priority_bits
        self._lpi_prio = self._prio_table()

    def _prio_table(self) -> bytes:
        bits = (0xFF << (8 - self._prio_bits)) & 0xFF
        if self._two:
            return bytes((0x80 | (c & LPI_CFG_PRIORITY) >> 1) & bits for c in range(256))
        return bytes(c & bits & LPI_CFG_PRIORITY for c in range(256))

    def set_two_states(self) -> None:
        """Reset with two Security states: LPI priorities in their Non-secure view,
        GICR_WAKER Secure only, and the SGI frame's Secure-only registers."""
        self._two = True
        self._lpi_prio = self._prio_table()
        self.sgi.two_states = True

    def inject_faults(self, *, syncr_stuck: int = 0, syncr_stuck_rate: float = 1.0,
                      cache_refill: float = 0.0, seed: int = 0) -> None:
        """Switch the injected faults of this RD on (see the module docstring)."""
        self._syncr_stuck = syncr_stuck
        self._syncr_rate = syncr_stuck_rate if syncr_stuck else 0.0
        self._refill = cache_refill
        self._fault_rng = random.Random(seed)

    # -- dispatch configuration -----------------------------------------------

    def _table_key(self) -> Hashable:
        return (self._plpis, self._direct)

    def _has_feature(self, feature: str) -> bool:
        if feature == "direct_lpi":
            return self._direct
        if feature == "plpis":
            return self._plpis
        return not feature

    # -- properties other blocks use -------------------------------------------

    @property
    def lpis_enabled(self) -> bool:
        return self._enabled

    @property
    def asleep(self) -> bool:
        return self._sleep

    @property
    def direct_lpi(self) -> bool:
        return self._direct

    def cached_config(self, intid: int) -> int | None:
        """The configuration byte this RD currently uses for ``intid`` (None: not cached)."""
        return self._cfg.get(intid)

    # -- LPI state machine --------------------------------------------------------

    def _load_config(self, intid: int, why: str = "") -> int:
        """Read ``intid``'s configuration byte from memory into the cache."""
        c = self._memory.read_u8(self._prop_pa + intid - LPI_BASE)
        self._cfg[intid] = c
        hub = self._hub
        if hub.on[EventKind.CONFIG_LOAD]:
            hub.emit(Event(EventKind.CONFIG_LOAD, self.frame_name, cpu=self.cpu, intid=intid,
                           addr=self._prop_pa + intid - LPI_BASE, value=c, reason=why))
        if not c & LPI_CFG_RES1:
            hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, cpu=self.cpu,
                             intid=intid, value=c, reason="lpi-config-res1",
                             detail=f"configuration byte {c:#04x} of LPI {intid} has bit 1 "
                                    "(RES1) clear"))
        return c

    def set_lpi_pending(self, intid: int, via: str = "setlpir") -> bool:
        """Make ``intid`` pending, as a GICR_SETLPIR write does.  Returns True if it changed.

        ``via`` says where it came from: "setlpir", "pending-table" (EnableLPIs), "its"
        (a translated MSI or an INT/MOVI/MOVALL command of an ITS).
        """
        if not self._enabled or not LPI_BASE <= intid < self._lpi_limit:
            self._setlpir_ignored(intid, via)
            return False
        if self._refill:
            self._maybe_refill()
        pend = self.lpi_pending
        if intid in pend:
            hub = self._hub
            if hub.on[_EV_IGNORED]:
                hub.emit(Event(_EV_IGNORED, self.frame_name, cpu=self.cpu, intid=intid,
                               master=hub.requester, reason="already-pending",
                               register="GICR_SETLPIR" if via == "setlpir" else via,
                               detail=f"LPI {intid} already pending: the write coalesces"))
            else:
                hub.counts[_EV_IGNORED] += 1
            return False
        pend.add(intid)
        c = self._cfg.get(intid)
        if c is None:
            c = self._load_config(intid)
        if c & LPI_CFG_ENABLE:
            self._queue.push((self._lpi_prio[c] << 24) | intid)
            self._kicked.add(self.cpu)
        if self._hub.on[_EV_LPI_PENDING]:
            # The writer of SETLPIR, for the audit; a pending-table load has none.
            self._hub.emit(Event(_EV_LPI_PENDING, self.frame_name, cpu=self.cpu, intid=intid,
                                 value=c, reason=via,
                                 master=None if via == "pending-table" else self._hub.requester))
        return True

    def _setlpir_ignored(self, intid: int, via: str = "setlpir") -> None:
        if not self._enabled:
            reason, why = "lpis-disabled", "GICR_CTLR.EnableLPIs is 0"
        else:
            reason, why = "unimplemented-intid", (
                f"not an implemented LPI (LPIs are {LPI_BASE}..{self._lpi_limit - 1})")
        self._hub.report(Event(_EV_IGNORED, self.frame_name, cpu=self.cpu, intid=intid,
                               master=self._hub.requester, reason=reason,
                               register="GICR_SETLPIR" if via == "setlpir" else via,
                               detail=(f"SETLPIR {intid} ignored: {why}" if via == "setlpir"
                                       else f"LPI {intid} from the {via} ignored: {why}")))

    def _maybe_refill(self) -> None:
        """The ``cache_refill`` fault: perhaps drop the configuration cache now, keeping (by
        reloading them from the property table) the bytes of the LPIs pending."""
        if not self._enabled or self._fault_rng.random() >= self._refill:
            return
        self._cfg.clear()
        for intid in self.lpi_pending:
            self._load_config(intid, "fault-cache-refill")
        self._rebuild_queue()
        self._kicked.add(self.cpu)

    def best_lpi_key(self) -> int:
        """``priority << 24 | INTID`` of the highest priority pending enabled LPI, or NO_PENDING."""
        queue = self._queue
        pend = self.lpi_pending
        cfg = self._cfg
        lp = self._lpi_prio
        while queue.n:
            k = queue.top()
            i = k & 0xFFFFFF
            if i in pend:
                c = cfg[i]
                if c & LPI_CFG_ENABLE and (lp[c] << 24) | i == k:
                    return k
            queue.pop()
        return NO_PENDING

    def acknowledge_lpi(self, key: int) -> None:
        """The CPU interface acknowledged the queue's top LPI: it stops being pending."""
        self._queue.pop()
        self.lpi_pending.discard(key & 0xFFFFFF)

    def _push_if_enabled(self, intid: int) -> None:
        c = self._cfg[intid]
        if c & LPI_CFG_ENABLE:
            self._queue.push((self._lpi_prio[c] << 24) | intid)
            self._kicked.add(self.cpu)
        self._compact()

    def _compact(self) -> None:
        """Drop stale keys once they outnumber live ones (bounded memory, O(1) amortised)."""
        if self._queue.n > 2 * len(self.lpi_pending) + 64:
            self._rebuild_queue()

    def _rebuild_queue(self) -> None:
        cfg = self._cfg
        lp = self._lpi_prio
        self._queue.rebuild([(lp[cfg[i]] << 24) | i for i in self.lpi_pending
                             if cfg[i] & LPI_CFG_ENABLE])

    # -- operations an ITS command shares with the DirectLPI registers ------------------

    def reload_config(self, intid: int) -> None:
        """Read ``intid``'s configuration byte from memory again (GICR_INVLPIR, ITS INV).

        The caller has checked that LPIs are enabled and ``intid`` is implemented."""
        self._load_config(intid)
        if intid in self.lpi_pending:
            self._push_if_enabled(intid)

    def reload_all_config(self) -> None:
        """Read every cached configuration byte again (GICR_INVALLR, ITS INVALL)."""
        if self._enabled:
            for intid in list(self._cfg):
                self._load_config(intid)
            self._rebuild_queue()
            self._kicked.add(self.cpu)

    def implements(self, intid: int) -> bool:
        """Whether ``intid`` is an LPI this RD accepts now (EnableLPIs 1, within IDbits)."""
        return self._enabled and LPI_BASE <= intid < self._lpi_limit

    def remove_pending(self, intid: int, command: str | None = None) -> bool:
        """Remove ``intid``'s pending state: an ITS CLEAR or DISCARD (``command`` names it,
        and an LPI_CLEARED event is emitted), or the source side of a MOVI/MOVALL
        (``command`` None: the pending state moves, it is not cleared).

        True if it was pending.  Does nothing while LPIs are disabled: the pending
        state is then in the pending table, which an ITS command does not touch."""
        if intid not in self.lpi_pending:
            return False
        self.lpi_pending.discard(intid)
        self._compact()
        if command is not None and self._hub.on[EventKind.LPI_CLEARED]:
            self._hub.emit(Event(EventKind.LPI_CLEARED, self.frame_name, cpu=self.cpu,
                                 intid=intid, register="ITS", reason=command))
        return True

    def _enable_lpis(self) -> None:
        problem = None
        if self._rwp:
            problem = "EnableLPIs set while GICR_CTLR.RWP is 1 (the previous clear is in progress)"
        elif self._prop_unknown or self._pend_unknown:
            which = "GICR_PROPBASER" if self._prop_unknown else "GICR_PENDBASER"
            problem = f"EnableLPIs set while {which} still holds its UNKNOWN reset value"
        else:
            other = None
            if any(pb != self._propbaser for pb in self._gic.enabled_propbasers):
                other = next((rd for rd in self._gic.redists
                              if rd._enabled and rd._propbaser != self._propbaser
                              and rd._lpi_domain == self._lpi_domain), None)
            if other is not None:
                aff = GICR.TYPER.CommonLPIAff.get(self._typer)
                problem = (f"EnableLPIs set with PROPBASER {self._propbaser:#x} while GICR"
                           f"{other.cpu} uses {other._propbaser:#x} (CommonLPIAff = {aff}: "
                           "these RDs must share one configuration table)")
        if problem is not None:
            self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, cpu=self.cpu,
                                   reason="enable-lpis", detail=problem + "; write ignored"))
            return
        id_bits = min(_PROP_IDBITS.get(self._propbaser), self._gic.id_bits - 1) + 1
        self._lpi_limit = 1 << id_bits if id_bits >= 14 else LPI_BASE
        self._prop_pa = self._propbaser & _PROP_PA
        self._pend_pa = self._pendbaser & _PEND_PA
        self._cfg.clear()
        self.lpi_pending.clear()
        self._queue.clear()
        self._enabled = True
        self._gic.enabled_propbasers[self._propbaser] += 1
        if self._hub.on[EventKind.LPIS_ENABLED]:
            self._hub.emit(Event(EventKind.LPIS_ENABLED, self.frame_name, cpu=self.cpu,
                                 value=self._lpi_limit))
        found = self._scan_pending_table()
        if self._ptz:
            self._ptz = False
            if found:
                self._hub.report(Event(
                    EventKind.UNPREDICTABLE, self.frame_name, cpu=self.cpu, reason="ptz-not-zero",
                    detail=f"PENDBASER.PTZ was written as 1 but the pending table holds "
                           f"{len(found)} pending LPI(s); they were not made pending"))
            return
        for intid in found:
            self.set_lpi_pending(intid, via="pending-table")

    def _scan_pending_table(self) -> list[int]:
        """INTIDs whose bit is set in the pending table (LPI range only)."""
        base = self._pend_pa
        mem = self._memory
        if any(mem.read(base, PENDING_TABLE_RESERVED_BYTES)):
            self._hub.report(Event(
                EventKind.UNPREDICTABLE, self.frame_name, cpu=self.cpu, addr=base,
                reason="pending-table-first-1k",
                detail="the first 1 KiB of the pending table (IMPLEMENTATION DEFINED) is not "
                       "zero at EnableLPIs; the model ignores it"))
        start = base + LPI_BASE // 8
        end = base + self._lpi_limit // 8
        found: list[int] = []
        if end <= start:
            return found
        for page_base, page in mem.pages_in(start, end - start):
            lo = max(start, page_base) - page_base
            hi = min(end, page_base + PAGE_SIZE) - page_base
            bits = int.from_bytes(page[lo:hi], "little")
            first = (page_base + lo - base) * 8
            while bits:
                low = bits & -bits
                found.append(first + low.bit_length() - 1)
                bits ^= low
        return found

    def _disable_lpis(self) -> None:
        """EnableLPIs 1 -> 0: write pending state back to memory, then RWP completes."""
        base = self._pend_pa
        mem = self._memory
        start = base + LPI_BASE // 8
        end = base + self._lpi_limit // 8
        for page_base, page in list(mem.pages_in(start, end - start)):
            lo = max(start, page_base) - page_base
            hi = min(end, page_base + PAGE_SIZE) - page_base
            page[lo:hi] = bytes(hi - lo)
        for intid in self.lpi_pending:
            addr = base + intid // 8
            mem.write_int(addr, mem.read_u8(addr) | (1 << (intid % 8)), 1)
        self.lpi_pending.clear()
        self._cfg.clear()
        self._queue.clear()
        self._enabled = False
        self._gic.enabled_propbasers -= Counter({self._propbaser: 1})
        self._rwp = self._busy_reads
        if self._hub.on[EventKind.LPIS_DISABLED]:
            self._hub.emit(Event(EventKind.LPIS_DISABLED, self.frame_name, cpu=self.cpu))

    def _mark_busy(self) -> None:
        if self._sync_busy < 0:
            return                      # stuck for ever (the syncr_stuck fault)
        self._sync_busy = 1
        self._sync_owed = True
        if self._syncr_rate and self._fault_rng.random() < self._syncr_rate:
            stuck = self._syncr_stuck
            self._sync_busy = -1 if stuck < 0 else 1 + stuck

    # -- RD_base register handlers ---------------------------------------------------

    def _r_CTLR(self) -> int:
        value = (_ENABLE_LPIS if self._enabled else 0) | (_CES if self._clearable else 0)
        if self._direct:
            value |= _IR
        if self._rwp:
            self._rwp -= 1
            value |= _RWP
        return value

    def _w_CTLR(self, value: int) -> None:
        if not self._plpis:
            return
        if value & _ENABLE_LPIS:
            if not self._enabled:
                self._enable_lpis()
        elif self._enabled:
            if self._clearable:
                self._disable_lpis()
            else:
                self._hub.report(Event(
                    EventKind.IGNORED, self.frame_name, cpu=self.cpu, reason="lpis-not-clearable",
                    detail="GICR_CTLR.EnableLPIs cannot be cleared once set on this GIC "
                           "(GICR_CTLR.CES is 0)"))

    def _r_IIDR(self) -> int:
        return self._iidr

    def _r_TYPER(self) -> int:
        return self._typer

    def _r_WAKER(self) -> int:
        if self._two and not self._gic.secure:
            return 0                    # Secure only with two Security states: RAZ/WI
        asleep = self._sleep
        if self._waker_busy:
            self._waker_busy -= 1
            asleep = not asleep
        return (_PROCESSOR_SLEEP if self._sleep else 0) | (_CHILDREN_ASLEEP if asleep else 0)

    def _w_WAKER(self, value: int) -> None:
        if self._two and not self._gic.secure:
            return
        sleep = bool(value & _PROCESSOR_SLEEP)
        if sleep != self._sleep:
            self._sleep = sleep
            self._waker_busy = self._busy_reads
            self._kicked.add(self.cpu)

    def _w_SETLPIR(self, value: int) -> None:
        """Also the bus's fused doorbell for GICR_SETLPIR (``Bus.add_doorbell``)."""
        self.set_lpi_pending(value & 0xFFFFFFFF)

    def _w_CLRLPIR(self, value: int) -> None:
        intid = value & 0xFFFFFFFF
        if not self._enabled or not LPI_BASE <= intid < self._lpi_limit:
            self._hub.report(Event(_EV_IGNORED, self.frame_name, cpu=self.cpu, intid=intid,
                                   reason="lpis-disabled" if not self._enabled
                                   else "unimplemented-intid",
                                   register="GICR_CLRLPIR", detail=f"CLRLPIR {intid} ignored"))
            return
        if intid not in self.lpi_pending:
            self._hub.report(Event(_EV_IGNORED, self.frame_name, cpu=self.cpu, intid=intid,
                                   reason="not-pending", register="GICR_CLRLPIR",
                                   detail=f"CLRLPIR {intid}: the LPI is not pending"))
            return
        self.lpi_pending.discard(intid)
        self._compact()
        self._mark_busy()
        if self._hub.on[EventKind.LPI_CLEARED]:
            self._hub.emit(Event(EventKind.LPI_CLEARED, self.frame_name, cpu=self.cpu,
                                 intid=intid, register="GICR_CLRLPIR"))

    def _r_PROPBASER(self) -> int:
        return self._propbaser

    def _w_PROPBASER(self, value: int) -> None:
        if self._baser_locked("GICR_PROPBASER", value):
            return
        self._propbaser = value & self._prop_writable
        self._prop_unknown = False

    def _r_PENDBASER(self) -> int:
        return self._pendbaser

    def _w_PENDBASER(self, value: int) -> None:
        if self._baser_locked("GICR_PENDBASER", value):
            return
        self._pendbaser = value & self._pend_writable
        self._ptz = bool(value & _PTZ)
        self._pend_unknown = False

    def _baser_locked(self, name: str, value: int) -> bool:
        if not self._enabled and not self._rwp:
            return False
        why = "EnableLPIs is 1" if self._enabled else "RWP is 1"
        self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, cpu=self.cpu,
                               value=value, reason="baser-while-enabled",
                               detail=f"write of {value:#x} to {name} while {why}: ignored"))
        return True

    def _w_INVLPIR(self, value: int) -> None:
        intid = value & 0xFFFFFFFF
        if not self._enabled or not LPI_BASE <= intid < self._lpi_limit:
            self._hub.report(Event(_EV_IGNORED, self.frame_name, cpu=self.cpu, intid=intid,
                                   reason="lpis-disabled" if not self._enabled
                                   else "unimplemented-intid",
                                   register="GICR_INVLPIR", detail=f"INVLPIR {intid} ignored"))
            self._mark_busy()
            return
        self.reload_config(intid)
        self._mark_busy()
        if self._hub.on[EventKind.INVALIDATE]:
            self._hub.emit(Event(EventKind.INVALIDATE, self.frame_name, cpu=self.cpu,
                                 intid=intid, value=self._cfg[intid]))

    def _w_INVALLR(self, value: int) -> None:
        self.reload_all_config()
        self._mark_busy()
        if self._hub.on[EventKind.INVALIDATE]:
            self._hub.emit(Event(EventKind.INVALIDATE, self.frame_name, cpu=self.cpu))

    def _r_SYNCR(self) -> int:
        if self._refill:
            self._maybe_refill()
        if self._sync_busy:
            if self._sync_busy > 0:
                self._sync_busy -= 1
            return 1
        if self._sync_owed:
            self._sync_owed = False
            if self._hub.on[EventKind.SYNC]:
                self._hub.emit(Event(EventKind.SYNC, self.frame_name, cpu=self.cpu))
        return 0

    def _r_IDREGS(self, n: int) -> int:
        return ID_REGISTER_VALUES[0xFFD0 + 4 * n]


class SgiFrame(MmioFrame):
    """The SGI_base frame of one redistributor: SGIs 0-15 and PPIs 16-31 of its PE.

    SGIs are always edge-triggered (ICFGR0 reads 0xAAAAAAAA); PPI trigger is
    programmable through ICFGR1 (reset: level).  A PPI's pending state is its
    software latch, or its input line when level-sensitive.

    With two Security states, GICR_IGROUPR0, GICR_IGRPMODR0 and GICR_NSACR are Secure
    only (RAZ/WI to a Non-secure access), a Secure SGI's or PPI's bits and fields are
    RAZ/WI to a Non-secure access (GICR_NSACR does not open them: it only governs SGI
    generation, as QEMU), and a Non-secure interrupt's priority has its Non-secure view.
    """

    REGISTERS = GICR_SGI

    __slots__ = ("_icfgr1", "active", "enable", "group", "grpmod", "latch", "level_mask", "line",
                 "nsacr", "prio", "prio_mask", "rd", "two_states")

    def __init__(self, rd: Redistributor, hub: EventHub, priority_bits: int) -> None:
        super().__init__(f"GICR{rd.cpu}.SGI", hub)
        self.rd = rd
        #: GICR_IGROUPR0 (1: Group 1 -- Non-secure Group 1 with two Security states).
        self.group = 0
        #: GICR_IGRPMODR0 and GICR_NSACR (two Security states only).
        self.grpmod = 0
        self.nsacr = 0
        self.two_states = False
        self.enable = 0
        self.latch = 0
        self.active = 0
        self.line = 0
        self._icfgr1 = 0
        #: Bits of level-sensitive PPIs (derived from ICFGR1).
        self.level_mask = 0xFFFF0000
        self.prio = bytearray(32)
        self.prio_mask = (0xFF << (8 - priority_bits)) & 0xFF

    def _indices(self, attr: str, reg: Reg) -> range:
        return range(reg.count)

    @property
    def pending(self) -> int:
        return self.latch | (self.line & self.level_mask)

    def best_key(self, groups: int) -> int:
        """Highest priority pending, enabled, inactive SGI/PPI among enabled ``groups``."""
        cand = (self.latch | (self.line & self.level_mask)) & self.enable & ~self.active
        if not cand:
            return NO_PENDING
        if groups & 3 != 3 or self.grpmod:
            g, m = self.group, self.grpmod
            cand &= ((~g & ~m if groups & 1 else 0) | (g if groups & 2 else 0)
                     | (~g & m if groups & 4 else 0))
        best = NO_PENDING
        prio = self.prio
        while cand:
            low = cand & -cand
            i = low.bit_length() - 1
            k = (prio[i] << 24) | i
            if k < best:
                best = k
            cand ^= low
        return best

    def _kick(self) -> None:
        self.rd._kicked.add(self.rd.cpu)

    def acknowledge(self, intid: int) -> None:
        bit = 1 << intid
        self.active |= bit
        self.latch &= ~bit

    def deactivate(self, intid: int) -> bool:
        bit = 1 << intid
        if not self.active & bit:
            return False
        self.active &= ~bit
        self._kick()
        return True

    def set_line(self, intid: int, level: bool) -> None:
        bit = 1 << intid
        if level:
            if not self.line & bit and not self.level_mask & bit:
                self.latch |= bit
            self.line |= bit
        else:
            self.line &= ~bit
        self._kick()

    def raise_sgi(self, intid: int) -> None:
        self.latch |= 1 << intid
        self._kick()

    def group_of(self, intid: int) -> int:
        """Group code (0 Group 0, 1 Group 1 / Non-secure Group 1, 2 Secure Group 1)."""
        bit = 1 << intid
        return 1 if self.group & bit else (2 if self.grpmod & bit else 0)

    def _reach(self) -> int:
        """The interrupts the access being made may reach: all, or (a Non-secure access
        with two Security states) the Non-secure Group 1 ones."""
        return self.group if self.two_states and not self.rd._gic.secure else 0xFFFFFFFF

    def _ns_access(self) -> bool:
        """A Non-secure access with two Security states (to which GICR_IGROUPR0, IGRPMODR0
        and NSACR are RAZ/WI)."""
        return self.two_states and not self.rd._gic.secure

    # -- register handlers -----------------------------------------------------

    def _r_IGROUPR0(self) -> int:
        return 0 if self._ns_access() else self.group

    def _w_IGROUPR0(self, value: int) -> None:
        if self._ns_access():
            return
        self.group = value & 0xFFFFFFFF
        self._kick()

    def _r_IGRPMODR0(self) -> int:
        return self.grpmod if self.two_states and not self._ns_access() else 0

    def _w_IGRPMODR0(self, value: int) -> None:
        if self.two_states and not self._ns_access():
            self.grpmod = value & 0xFFFFFFFF
            self._kick()

    def _r_NSACR(self) -> int:
        return self.nsacr if self.two_states and not self._ns_access() else 0

    def _w_NSACR(self, value: int) -> None:
        if self.two_states and not self._ns_access():
            self.nsacr = value & 0xFFFFFFFF

    def nsacr_of(self, intid: int) -> int:
        """GICR_NSACR's field for SGI ``intid`` (0..15)."""
        return (self.nsacr >> (2 * intid)) & 3

    def _r_ISENABLER0(self) -> int:
        return self.enable & self._reach()

    def _r_ICENABLER0(self) -> int:
        return self._r_ISENABLER0()

    def _w_ISENABLER0(self, value: int) -> None:
        self.enable |= value & self._reach()
        self._kick()

    def _w_ICENABLER0(self, value: int) -> None:
        self.enable &= ~(value & self._reach())

    def _r_ISPENDR0(self) -> int:
        return self.pending & self._reach()

    def _r_ICPENDR0(self) -> int:
        return self._r_ISPENDR0()

    def _w_ISPENDR0(self, value: int) -> None:
        self.latch |= value & self._reach()
        self._kick()

    def _w_ICPENDR0(self, value: int) -> None:
        self.latch &= ~(value & self._reach())

    def _r_ISACTIVER0(self) -> int:
        return self.active & self._reach()

    def _r_ICACTIVER0(self) -> int:
        return self._r_ISACTIVER0()

    def _w_ISACTIVER0(self, value: int) -> None:
        self.active |= value & self._reach()

    def _w_ICACTIVER0(self, value: int) -> None:
        self.active &= ~(value & self._reach())
        self._kick()

    def _r_IPRIORITYR(self, n: int) -> int:
        p = self.prio
        reach = self._reach()
        ns = reach != 0xFFFFFFFF
        value = 0
        for k in range(4):
            i = 4 * n + k
            if reach >> i & 1:
                value |= (ns_priority_read(p[i]) if ns else p[i]) << (8 * k)
        return value

    def _w_IPRIORITYR(self, n: int, value: int) -> None:
        reach = self._reach()
        ns = reach != 0xFFFFFFFF
        for k in range(4):
            i = 4 * n + k
            if reach >> i & 1:
                v = (value >> (8 * k)) & 0xFF
                self.prio[i] = (ns_priority_write(v) if ns else v) & self.prio_mask
        self._kick()

    def _r_ICFGR0(self) -> int:
        return 0xAAAAAAAA

    def _cfg_reach(self) -> int:
        """The ICFGR1 fields (PPIs 16..31) this access may reach."""
        reach = self._reach() >> 16
        return sum(3 << (2 * k) for k in range(16) if reach >> k & 1)

    def _r_ICFGR1(self) -> int:
        return self._icfgr1 & self._cfg_reach()

    def _w_ICFGR1(self, value: int) -> None:
        reach = self._cfg_reach()
        value = (self._icfgr1 & ~reach) | (value & reach)
        self._icfgr1 = value & 0xAAAAAAAA
        level = 0
        for k in range(16):
            if not (value >> (2 * k + 1)) & 1:
                level |= 1 << (16 + k)
        self.level_mask = level
        self._kick()
