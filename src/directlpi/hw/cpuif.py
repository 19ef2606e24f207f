"""GICv3 CPU interface: the ICC_* system registers of one PE (Arm IHI 0069).

Choices this module makes where the architecture allows several:

* **Priority ties go to the lowest INTID.**  Which of several pending
  interrupts of equal priority is the highest priority pending interrupt is
  IMPLEMENTATION DEFINED; every source (SGI/PPI, SPI, LPI) is compared on the
  one key ``priority << 24 | INTID``, so the lowest INTID wins.
* **Priority bits.**  ``priority_bits`` (default 5, as many Cortex-A cores)
  bits are implemented, for priorities and for preemption (PREbits = PRIbits):
  unimplemented low bits of PMR read as zero, and so do those of IPRIORITYR and LPI
  priorities unless the Distributor and Redistributors implement more
  (``dist_priority_bits``, as QEMU's 8): the highest priority pending interrupt is
  then chosen on all the bits they hold, and PMR, BPR and the active priorities
  compare with this interface's bits.
* **INTID bits** (ICC_CTLR_EL1.IDbits): 16 when the GIC's INTIDs fit in 16 bits,
  else 24; the machine option ``cpuif_id_bits`` names 16 or 24 (QEMU: 24 with a
  16-bit Distributor).
* **Group enables at the CPU interface filter candidates.**  The highest
  priority pending interrupt is chosen among interrupts whose group is enabled
  both in GICD_CTLR and in ICC_IGRPEN<n>_EL1; HPPIR1 and IAR1 return 1023 when
  that interrupt is Group 0.
* **EOI of an interrupt other than the highest priority active one**
  (UNPREDICTABLE) drops the highest active priority anyway, deactivates the
  named INTID when EOImode is 0, and is reported.  EOIR with no active priority,
  DIR while EOImode is 0, and EOIR whose highest active priority is in the other
  group are ignored and reported UNPREDICTABLE.
* ICC_SRE_EL1 reads 0x7 (system register interface only; RAO/WI).
* **Only the executing PE.**  ``GIC.executing`` names the PE whose instruction
  stream runs (the platform sets it while kernel code runs on a PE); an access to
  another PE's ICC_* registers is refused (a ``BAD_ACCESS`` event, reason
  ``sysreg-other-pe``, and :class:`~directlpi.errors.OtherPeSysregError`): no
  instruction can name another PE's system registers.  With no software running
  (``executing`` is None) a caller stands in for the PE whose registers it uses.

**Two Security states** (machine option ``security_states = 2``, GICD_CTLR.DS = 0), with
EL3: the kernel runs at Non-secure EL1, EL3 firmware (``GIC.secure_world``) is Secure;
Secure EL1 is not modelled.  Groups are Group 0, Secure Group 1 and Non-secure Group 1.

* **Banked by Security state:** ICC_CTLR_EL1, ICC_BPR1_EL1, ICC_IGRPEN1_EL1 and
  ICC_AP1R<n>_EL1; one copy of the others.  EL3 has ICC_SRE_EL3 (reads 0xF), ICC_CTLR_EL3
  (the banks' CBPR and EOImode, EOImode_EL3, nDS = 1) and ICC_IGRPEN1_EL3; from
  Non-secure EL1 they are UNDEFINED (refused: ``sysreg-undefined``).  In both banks of
  ICC_CTLR_EL1 only EOImode is writable (CBPR through ICC_CTLR_EL3).  ``SCR_EL3`` (only
  its FIQ bit is modelled) is written by the firmware.
* **SCR_EL3.FIQ = 1:** Non-secure EL1 accesses to the Group 0 registers (IAR0, EOIR0,
  HPPIR0, BPR0, AP0R<n>, IGRPEN0) trap to EL3 (refused: ``sysreg-trap-el3``), and
  ICC_PMR_EL1 and ICC_RPR_EL1 have their Non-secure view: a value below 0x80 reads 0 (and
  a PMR below 0x80 ignores Non-secure writes), others read ``value << 1`` (0xFF stays
  0xFF), a write stores ``0x80 | value >> 1``.  With FIQ = 0 they are unchanged.
* **Acknowledge:** at Non-secure EL1, IAR1/HPPIR1 return 1023 unless the HPPI is
  Non-secure Group 1 (a higher priority Secure interrupt hides it), IAR0/HPPIR0 return
  1023 (Group 0 is Secure).  At EL3, IAR0/HPPIR0 give a Group 0 INTID, 1020 for Secure
  Group 1, 1021 for Non-secure Group 1; IAR1/HPPIR1 acknowledge Secure Group 1.  EOIR1
  names the current state's Group 1; a Non-secure DIR of a Secure interrupt is ignored.
* **Group priority:** Non-secure Group 1 uses ``BPR1 - 1`` (its minimum is one above
  BPR0's), Group 0 and Secure Group 1 their BPR; one running priority for all groups.
* **SGIs** (QEMU's choices where QEMU and gem5 differ): ICC_SGI1R_EL1 asks for the current
  state's Group 1, ICC_ASGI1R_EL1 for the other's, ICC_SGI0R_EL1 for Group 0; a Group 1
  request reaches a Group 0 target as Group 0; a Non-secure request reaches a Group 0
  target only if GICR_NSACR >= 1 there, a Secure Group 1 target only if >= 2.

Nothing is cached: the highest priority pending interrupt is recomputed from the
redistributor's LPI heap, its SGI/PPI masks and the distributor's ready sets
when a register that needs it is read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Final

from directlpi.errors import OtherPeSysregError, SysregTrapError, UnknownSysregError
from directlpi.hw.distributor import G0, G1NS, G1S, NO_PENDING
from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.regs import ICC, INTID_SPURIOUS, LPI_BASE

if TYPE_CHECKING:
    from directlpi.hw.distributor import Distributor
    from directlpi.hw.gic import GIC
    from directlpi.hw.redistributor import Redistributor

_EV_ACK: Final = EventKind.ACK
_EV_EOI: Final = EventKind.EOI
_IDLE: Final = 0xFF
_CBPR: Final = ICC.CTLR.CBPR.mask
_EOIMODE: Final = ICC.CTLR.EOImode.mask
_RESTORED: Final = 0xFFFFFF
"""The INTID field of an active priority restored through ICC_AP<g>R<n>_EL1: none known."""
_GROUP_NAMES: Final = ("Group 0", "Group 1", "Secure Group 1")
_INTID_SECURE, _INTID_NONSECURE = 1020, 1021
_SCR_FIQ: Final = 1 << 2
_GROUP0_REGS: Final = ("ICC_IAR0_EL1", "ICC_EOIR0_EL1", "ICC_HPPIR0_EL1", "ICC_BPR0_EL1",
                "ICC_IGRPEN0_EL1")
_EL3_REGS: Final = ("ICC_SRE_EL3", "ICC_CTLR_EL3", "ICC_IGRPEN1_EL3", "SCR_EL3")


class CPUInterface:
    """The GIC CPU interface of PE ``cpu`` (AArch64 system registers)."""

    __slots__ = (
        "_active", "_ap_shift", "_bpr0", "_bpr1", "_bpr1_s", "_ctlr", "_ctlr_idbits",
        "_ctlr_s", "_dist", "_eoimode_el3", "_gic", "_hub", "_igrpen", "_min_bpr0", "_on",
        "_rd", "_readers", "_scr_fiq", "_sgi", "_two", "_writers", "cpu", "id_bits", "mpidr",
        "pmr", "prio_mask", "priority_bits",
    )

    def __init__(self, gic: GIC, hub: EventHub, *, cpu: int, mpidr: int, rd: Redistributor,
                 dist: Distributor, priority_bits: int, id_bits: int) -> None:
        self._gic = gic
        self._hub = hub
        self._on = hub.on
        self.cpu = cpu
        self.mpidr = mpidr
        self._rd = rd
        self._sgi = rd.sgi
        self._dist = dist
        self.priority_bits = priority_bits
        self.id_bits = id_bits
        self.prio_mask = (0xFF << (8 - priority_bits)) & 0xFF
        self._ctlr_idbits = ICC.CTLR.IDbits.put(0 if id_bits <= 16 else 1)
        self._min_bpr0 = 7 - priority_bits
        self.pmr = 0
        self._bpr0 = self._min_bpr0
        self._bpr1 = self._min_bpr0 + 1
        self._ctlr = 0
        #: Two Security states: the Secure banks, EL3's EOImode, SCR_EL3.FIQ.
        self._two = False
        self._ctlr_s = 0
        self._bpr1_s = self._min_bpr0
        self._eoimode_el3 = False
        self._scr_fiq = False
        #: Group enables, bit ``group code`` (bit 0: ICC_IGRPEN0_EL1, bit 1: ICC_IGRPEN1_EL1
        #: -- the Non-secure bank with two Security states --, bit 2: the Secure bank).
        self._igrpen = 0
        #: Active priorities, innermost last: ``group_priority << 26 | group << 24 | INTID``
        #: (group: its code, 0 Group 0, 1 Group 1 / Non-secure Group 1, 2 Secure Group 1).
        self._active: list[int] = []
        self._readers: dict[str, Callable[[], int]] = {
            ICC.IAR0.name: self._read_iar0,
            ICC.IAR1.name: self._read_iar1,
            ICC.HPPIR0.name: self._read_hppir0,
            ICC.HPPIR1.name: lambda: self._hppir(self._g1()),
            ICC.PMR.name: self._read_pmr,
            ICC.RPR.name: self._read_rpr,
            ICC.BPR0.name: lambda: self._bpr0,
            ICC.BPR1.name: self._read_bpr1,
            ICC.CTLR.name: self._read_ctlr,
            ICC.IGRPEN0.name: lambda: self._igrpen & 1,
            ICC.IGRPEN1.name: lambda: (self._igrpen >> self._g1()) & 1,
            ICC.SRE.name: lambda: 0x7,
        }
        self._writers: dict[str, Callable[[int], None]] = {
            ICC.EOIR0.name: lambda v: self._write_eoir(v, G0),
            ICC.EOIR1.name: lambda v: self._write_eoir(v, self._g1()),
            ICC.DIR.name: self._write_dir,
            ICC.PMR.name: self._write_pmr,
            ICC.BPR0.name: self._write_bpr0,
            ICC.BPR1.name: self._write_bpr1,
            ICC.CTLR.name: self._write_ctlr,
            ICC.IGRPEN0.name: lambda v: self._write_igrpen(v, G0),
            ICC.IGRPEN1.name: lambda v: self._write_igrpen(v, self._g1()),
            ICC.SRE.name: lambda v: None,
            ICC.SGI1R.name: lambda v: self._write_sgi(v, self._g1(), ICC.SGI1R.name),
            ICC.SGI0R.name: lambda v: self._write_sgi(v, G0, ICC.SGI0R.name),
            # One Security state (DS = 1): the "other" state's Group 1 is Group 0.
            ICC.ASGI1R.name: lambda v: self._write_sgi(
                v, (G1NS if self._gic.secure else G1S) if self._two else G0, ICC.ASGI1R.name),
        }
        # ICC_AP<g>R<n>_EL1: one register per 32 preemption levels the priority bits give
        # (5 bits: 32 levels, 6: 64, 7 or 8: 128 -- the group priority has 7 bits at most).
        self._ap_shift = 8 - min(priority_bits, 7)
        for n in range(1 << max(0, min(priority_bits, 7) - 5)):
            self._readers[f"ICC_AP0R{n}_EL1"] = partial(self._read_apr, G0, n)
            self._writers[f"ICC_AP0R{n}_EL1"] = partial(self._write_apr, G0, n)
            self._readers[f"ICC_AP1R{n}_EL1"] = partial(self._read_ap1r, n)
            self._writers[f"ICC_AP1R{n}_EL1"] = partial(self._write_ap1r, n)

    def set_two_states(self) -> None:
        """Reset with two Security states (see the module docstring): the EL3 registers."""
        self._two = True
        self._readers.update({
            ICC.SRE_EL3.name: lambda: 0xF,
            ICC.CTLR_EL3.name: self._read_ctlr_el3,
            ICC.IGRPEN1_EL3.name: lambda: ((self._igrpen >> 1) & 1) | ((self._igrpen >> 1) & 2),
            "SCR_EL3": lambda: _SCR_FIQ if self._scr_fiq else 0,
        })
        self._writers.update({
            ICC.CTLR_EL3.name: self._write_ctlr_el3,
            ICC.IGRPEN1_EL3.name: self._write_igrpen1_el3,
            "SCR_EL3": self._write_scr_el3,
        })

    def _g1(self) -> int:
        """The group code ICC_*1_EL1 registers name: the current Security state's Group 1."""
        return G1S if self._gic.secure else G1NS

    def set_implementation(self, *, id_bits: int | None) -> None:
        """The machine option ``cpuif_id_bits`` (None: follow the GIC's INTID bits)."""
        if id_bits is not None:
            self._ctlr_idbits = ICC.CTLR.IDbits.put(0 if id_bits <= 16 else 1)

    # -- the public accessors -------------------------------------------------------

    def read_sysreg(self, name: str) -> int:
        """``MRS`` of ICC register ``name`` (e.g. "ICC_IAR1_EL1").

        Raises :class:`~directlpi.errors.UnknownSysregError` for a name this CPU
        interface does not implement or cannot read.
        """
        ex = self._gic.executing
        if ex is not None and ex != self.cpu:
            raise self._other_pe(name, "read", ex)
        fn = self._readers.get(name)
        if fn is None:
            raise self._unknown(name, "read")
        if self._two and not self._gic.secure:
            self._check_ns(name, "read")
        return fn()

    def write_sysreg(self, name: str, value: int) -> None:
        """``MSR`` of ICC register ``name``.  Raises UnknownSysregError like read_sysreg."""
        ex = self._gic.executing
        if ex is not None and ex != self.cpu:
            raise self._other_pe(name, "write", ex)
        fn = self._writers.get(name)
        if fn is None:
            raise self._unknown(name, "write")
        if self._two and not self._gic.secure:
            self._check_ns(name, "write")
        fn(value & 0xFFFFFFFFFFFFFFFF)

    def sysreg_reader(self, name: str) -> Callable[[], int]:
        """``read_sysreg(name)`` with the name resolved once (hot paths: a driver resolves
        its registers at probe).  Each call makes the checks a read makes; ICC_IAR1_EL1
        gets the fused acknowledge (:meth:`read_iar1`).  Raises UnknownSysregError now."""
        if name not in self._readers:
            raise self._unknown(name, "read")
        if name == ICC.IAR1.name:
            return self.read_iar1
        return partial(self.read_sysreg, name)

    def sysreg_writer(self, name: str) -> Callable[[int], None]:
        """``write_sysreg(name, value)`` resolved once, as :meth:`sysreg_reader`;
        ICC_EOIR1_EL1 gets the fused EOI (:meth:`write_eoir1`)."""
        if name not in self._writers:
            raise self._unknown(name, "write")
        if name == ICC.EOIR1.name:
            return self.write_eoir1
        return partial(self.write_sysreg, name)

    def read_iar1(self) -> int:
        """``MRS ICC_IAR1_EL1``: what ``read_sysreg("ICC_IAR1_EL1")`` does, without the
        lookup by name (IAR1 neither traps nor is UNDEFINED in any Security state)."""
        gic = self._gic
        ex = gic.executing
        if ex is not None and ex != self.cpu:
            raise self._other_pe(ICC.IAR1.name, "read", ex)
        return self._read_iar1()

    def write_eoir1(self, value: int) -> None:
        """``MSR ICC_EOIR1_EL1``: what ``write_sysreg("ICC_EOIR1_EL1", value)`` does,
        without the lookup by name."""
        gic = self._gic
        ex = gic.executing
        if ex is not None and ex != self.cpu:
            raise self._other_pe(ICC.EOIR1.name, "write", ex)
        self._write_eoir(value & 0xFFFFFFFFFFFFFFFF, self._g1())

    def _check_ns(self, name: str, op: str) -> None:
        """Non-secure EL1 with two Security states: EL3's registers are UNDEFINED, and with
        SCR_EL3.FIQ = 1 the Group 0 registers trap to EL3."""
        if name in _EL3_REGS:
            reason, why = "sysreg-undefined", "is UNDEFINED at Non-secure EL1 (EL3 only)"
        elif self._scr_fiq and (name in _GROUP0_REGS or name.startswith("ICC_AP0R")):
            reason, why = "sysreg-trap-el3", "traps to EL3 from Non-secure EL1 (SCR_EL3.FIQ = 1)"
        else:
            return
        detail = f"{op} of {name} on PE {self.cpu} {why}; refused"
        self._hub.report(Event(EventKind.BAD_ACCESS, f"ICC{self.cpu}", cpu=self.cpu,
                               reason=reason, register=name, detail=detail))
        raise SysregTrapError(detail)

    def _other_pe(self, name: str, op: str, executing: int) -> OtherPeSysregError:
        """A system register is reached only by an instruction of its own PE: software
        running on PE ``executing`` has no way to name PE ``cpu``'s ICC_* registers."""
        detail = (f"{op} of {name} of PE {self.cpu} by software running on PE {executing}: "
                  "a PE can only reach its own system registers; refused")
        self._hub.report(Event(EventKind.BAD_ACCESS, f"ICC{self.cpu}", cpu=self.cpu,
                               reason="sysreg-other-pe", register=name, detail=detail))
        return OtherPeSysregError(detail)

    def _unknown(self, name: str, op: str) -> UnknownSysregError:
        if name in _EL3_REGS and not self._two:
            return UnknownSysregError(f"{name}: this model has EL3 only with two Security "
                                      "states (machine option security_states = 2)")
        if op == "read" and name in self._writers:
            return UnknownSysregError(f"{name} is write-only: it cannot be read")
        if op == "write" and name in self._readers:
            return UnknownSysregError(f"{name} is read-only: it cannot be written")
        known = ", ".join(sorted(set(self._readers) | set(self._writers)))
        return UnknownSysregError(f"unknown system register {name!r}; the CPU interface "
                                  f"implements: {known}")

    @property
    def sysreg_names(self) -> tuple[str, ...]:
        return tuple(sorted(set(self._readers) | set(self._writers)))

    # -- highest priority pending interrupt ----------------------------------------

    def _groups(self) -> int:
        return self._dist.en_grp & self._igrpen

    def highest_pending(self) -> int:
        """Key ``priority << 24 | INTID`` of the HPPI for this PE, or NO_PENDING."""
        rd = self._rd
        if rd._sleep:
            return NO_PENDING
        groups = self._dist.en_grp & self._igrpen
        if not groups:
            return NO_PENDING
        best = rd.best_lpi_key() if groups & 2 and rd._queue.n else NO_PENDING
        sgi = self._sgi
        if sgi.latch | sgi.line:
            k = sgi.best_key(groups)
            if k < best:
                best = k
        dist = self._dist
        if dist.ready[self.cpu] or dist.ready_any:
            k = dist.best_key(self.cpu, groups)
            if k < best:
                best = k
        return best

    def _group_of(self, intid: int) -> int:
        if intid >= LPI_BASE:
            return G1NS
        if intid < 32:
            return self._sgi.group_of(intid)
        return self._dist.group[intid]

    def _gprio_mask(self, group: int) -> int:
        if group == G0 or (self._ctlr if group == G1NS else self._ctlr_s) & _CBPR:
            return (0xFF << (self._bpr0 + 1)) & 0xFF
        if group == G1NS:
            return (0xFF << self._bpr1) & 0xFF
        return (0xFF << (self._bpr1_s + 1)) & 0xFF

    def running_priority(self) -> int:
        """ICC_RPR_EL1: group priority of the highest priority active interrupt, 0xFF if idle."""
        return self._active[-1] >> 26 if self._active else _IDLE

    def can_signal(self, group: int) -> bool:
        """Whether this PE's IRQ (group 1) or FIQ (group 0) line is asserted."""
        key = self.highest_pending()
        if key == NO_PENDING:
            return False
        intid = key & 0xFFFFFF
        if self._group_of(intid) != group:
            return False
        return self._preempts(key >> 24, group)

    def _preempts(self, prio: int, group: int) -> bool:
        if prio >= self.pmr:
            return False
        if not self._active:
            return True
        mask = self._gprio_mask(group)
        return (prio & mask) < ((self._active[-1] >> 26) & mask)

    def irq_pending(self) -> bool:
        """The PE's IRQ signal: a Group 1 interrupt can be acknowledged now."""
        return self.can_signal(1)

    # -- acknowledge -------------------------------------------------------------------

    def _acknowledge(self, group: int) -> int:
        key = self.highest_pending()
        if key == NO_PENDING:
            return INTID_SPURIOUS
        intid = key & 0xFFFFFF
        prio = key >> 24
        if intid >= LPI_BASE:
            if group != G1NS:
                return INTID_SPURIOUS
        elif self._group_of(intid) != group:
            return INTID_SPURIOUS
        if prio >= self.pmr:
            return INTID_SPURIOUS
        active = self._active
        mask = self._gprio_mask(group)
        if active and (prio & mask) >= ((active[-1] >> 26) & mask):
            return INTID_SPURIOUS
        active.append(((prio & mask) << 26) | (group << 24) | intid)
        if intid >= LPI_BASE:
            self._rd.acknowledge_lpi(key)
        elif intid < 32:
            self._sgi.acknowledge(intid)
        else:
            self._dist.acknowledge(intid)
        if self._on[_EV_ACK]:
            self._hub.emit(Event(_EV_ACK, f"ICC{self.cpu}", cpu=self.cpu, intid=intid, value=prio))
        return intid

    def _read_iar1(self) -> int:
        return self._acknowledge(G1S if self._gic.secure else G1NS)

    def _read_iar0(self) -> int:
        return self._group0_special() or self._acknowledge(G0)

    def _read_hppir0(self) -> int:
        return self._group0_special() or self._hppir(G0)

    def _group0_special(self) -> int:
        """What IAR0/HPPIR0 return instead of a Group 0 INTID, with two Security states:
        1023 at Non-secure EL1 (Group 0 is Secure), and at EL3 a pending Group 1 HPPI named
        by its Security state (1020 Secure, 1021 Non-secure); 0 otherwise."""
        if not self._two:
            return 0
        if not self._gic.secure:
            return INTID_SPURIOUS
        key = self.highest_pending()
        if key == NO_PENDING:
            return 0
        group = self._group_of(key & 0xFFFFFF)
        return {G1S: _INTID_SECURE, G1NS: _INTID_NONSECURE}.get(group, 0)

    def _hppir(self, group: int) -> int:
        key = self.highest_pending()
        if key == NO_PENDING:
            return INTID_SPURIOUS
        intid = key & 0xFFFFFF
        return intid if self._group_of(intid) == group else INTID_SPURIOUS

    # -- end of interrupt ------------------------------------------------------------------

    def _write_eoir(self, value: int, group: int) -> None:
        intid = value & 0xFFFFFF
        if 1020 <= intid <= 1023:
            return
        active = self._active
        if not active:
            self._unpredictable(intid, "eoi-not-active",
                                f"ICC_EOIR{group}_EL1 {intid} with no active priority: ignored")
            return
        top = active[-1]
        reg = f"ICC_EOIR{min(group, 1)}_EL1"
        if (top >> 24) & 3 != group:
            self._unpredictable(intid, "eoi-wrong-group",
                                f"{reg} {intid}, but the highest active priority belongs to "
                                f"{_GROUP_NAMES[(top >> 24) & 3]}: ignored")
            return
        active.pop()
        self._gic.kicked.add(self.cpu)
        if top & 0xFFFFFF not in (intid, _RESTORED):
            self._unpredictable(intid, "eoi-not-highest",
                                f"{reg} {intid}, but the highest priority active "
                                f"interrupt is {top & 0xFFFFFF}: its priority was dropped")
        if self._on[_EV_EOI]:
            self._hub.emit(Event(_EV_EOI, f"ICC{self.cpu}", cpu=self.cpu, intid=intid))
        if not self._eoimode():
            self._deactivate(intid)

    def _eoimode(self) -> bool:
        """EOImode of the current state: ICC_CTLR_EL1's bank, or ICC_CTLR_EL3.EOImode_EL3."""
        if self._gic.secure:
            return self._eoimode_el3
        return bool(self._ctlr & _EOIMODE)

    def _write_dir(self, value: int) -> None:
        intid = value & 0xFFFFFF
        if 1020 <= intid <= 1023:
            return
        if not self._eoimode():
            self._unpredictable(intid, "dir-eoimode0",
                                f"ICC_DIR_EL1 {intid} while ICC_CTLR_EL1.EOImode is 0: ignored")
            return
        if self._two and not self._gic.secure and intid < LPI_BASE \
                and self._group_of(intid) != G1NS:
            self._hub.report(Event(EventKind.IGNORED, f"ICC{self.cpu}", cpu=self.cpu,
                                   intid=intid, reason="dir-secure",
                                   detail=f"Non-secure ICC_DIR_EL1 of Secure INTID {intid}: "
                                          "ignored"))
            return
        self._deactivate(intid)

    def _deactivate(self, intid: int) -> None:
        if intid >= LPI_BASE:
            return  # LPIs have no active state
        done = self._sgi.deactivate(intid) if intid < 32 else (
            self._dist.valid_spi(intid) and self._dist.deactivate(intid))
        if done:
            if self._on[EventKind.DEACTIVATE]:
                self._hub.emit(Event(EventKind.DEACTIVATE, f"ICC{self.cpu}", cpu=self.cpu,
                                     intid=intid))
        else:
            self._hub.report(Event(EventKind.IGNORED, f"ICC{self.cpu}", cpu=self.cpu,
                                   intid=intid, reason="not-active",
                                   detail=f"deactivation of INTID {intid}, which is not active"))

    def _unpredictable(self, intid: int, reason: str, detail: str) -> None:
        self._hub.report(Event(EventKind.UNPREDICTABLE, f"ICC{self.cpu}", cpu=self.cpu,
                               intid=intid, reason=reason, detail=detail))

    # -- plain registers ----------------------------------------------------------------------

    def _ns_view(self) -> bool:
        """ICC_PMR_EL1 and ICC_RPR_EL1 in their Non-secure view: a Non-secure access with
        two Security states and SCR_EL3.FIQ = 1."""
        return self._two and self._scr_fiq and not self._gic.secure

    def _read_pmr(self) -> int:
        return self._ns_priority(self.pmr) if self._ns_view() else self.pmr

    def _read_rpr(self) -> int:
        rpr = self.running_priority()
        return self._ns_priority(rpr) if self._ns_view() else rpr

    @staticmethod
    def _ns_priority(value: int) -> int:
        if not value & 0x80:
            return 0                    # a Secure priority: not visible
        return value if value == 0xFF else (value << 1) & 0xFF

    def _write_pmr(self, value: int) -> None:
        value &= 0xFF
        if self._ns_view():
            if not self.pmr & 0x80:
                self._hub.report(Event(EventKind.IGNORED, f"ICC{self.cpu}", cpu=self.cpu,
                                       value=value, reason="pmr-secure-range",
                                       detail=f"Non-secure ICC_PMR_EL1 write {value:#x} while "
                                              f"PMR is {self.pmr:#x} (below 0x80, Secure): "
                                              "ignored"))
                return
            value = 0x80 | (value >> 1)
        self.pmr = value & self.prio_mask
        self._gic.kicked.add(self.cpu)

    def _write_bpr0(self, value: int) -> None:
        self._bpr0 = max(value & 7, self._min_bpr0)
        self._gic.kicked.add(self.cpu)

    def _read_bpr1(self) -> int:
        if self._gic.secure:            # the Secure bank; with CBPR it is BPR0
            return self._bpr0 if self._ctlr_s & _CBPR else self._bpr1_s
        if self._ctlr & _CBPR:
            return min(self._bpr0 + 1, 7)
        return self._bpr1

    def _write_bpr1(self, value: int) -> None:
        if self._gic.secure:
            if self._ctlr_s & _CBPR:
                self._write_bpr0(value)
            else:
                self._bpr1_s = max(value & 7, self._min_bpr0)
                self._gic.kicked.add(self.cpu)
            return
        if self._ctlr & _CBPR:
            return
        self._bpr1 = max(value & 7, self._min_bpr0 + 1)
        self._gic.kicked.add(self.cpu)

    def _ctlr_ro(self) -> int:
        return (ICC.CTLR.PRIbits.put(self.priority_bits - 1) | self._ctlr_idbits
                | ICC.CTLR.A3V.put(1))

    def _read_ctlr(self) -> int:
        return (self._ctlr_s if self._gic.secure else self._ctlr) | self._ctlr_ro()

    def _write_ctlr(self, value: int) -> None:
        if self._two:                   # CBPR is ICC_CTLR_EL3's in both banks
            bank = self._ctlr_s if self._gic.secure else self._ctlr
            bank = (bank & ~_EOIMODE) | (value & _EOIMODE)
            if self._gic.secure:
                self._ctlr_s = bank
            else:
                self._ctlr = bank
        else:
            self._ctlr = value & (_CBPR | _EOIMODE)
        self._gic.kicked.add(self.cpu)

    def _read_ctlr_el3(self) -> int:
        e = ICC.CTLR_EL3
        return (e.CBPR_EL1S.put(self._ctlr_s & _CBPR) | e.CBPR_EL1NS.put(self._ctlr & _CBPR)
                | e.EOImode_EL3.put(int(self._eoimode_el3))
                | e.EOImode_EL1S.put(ICC.CTLR.EOImode.get(self._ctlr_s))
                | e.EOImode_EL1NS.put(ICC.CTLR.EOImode.get(self._ctlr))
                | self._ctlr_ro() | e.nDS.put(1))

    def _write_ctlr_el3(self, value: int) -> None:
        e = ICC.CTLR_EL3
        self._ctlr_s = e.CBPR_EL1S.get(value) | ICC.CTLR.EOImode.put(e.EOImode_EL1S.get(value))
        self._ctlr = e.CBPR_EL1NS.get(value) | ICC.CTLR.EOImode.put(e.EOImode_EL1NS.get(value))
        self._eoimode_el3 = bool(e.EOImode_EL3.get(value))
        self._gic.kicked.add(self.cpu)

    def _write_igrpen1_el3(self, value: int) -> None:
        self._write_igrpen(value, G1NS)
        self._write_igrpen(value >> 1, G1S)

    def _write_scr_el3(self, value: int) -> None:
        """SCR_EL3 as the firmware programs it; only FIQ (bit 2) changes the GIC's views."""
        self._scr_fiq = bool(value & _SCR_FIQ)

    def _write_igrpen(self, value: int, group: int) -> None:
        bit = 1 << group
        self._igrpen = (self._igrpen | bit) if value & 1 else (self._igrpen & ~bit)
        self._gic.kicked.add(self.cpu)

    # -- active priorities -------------------------------------------------------------

    def _read_apr(self, group: int, n: int) -> int:
        """Bit i of ICC_AP<group>R<n>_EL1: group priority ``(32 n + i) << shift`` is active
        in ``group`` (each acknowledge sets one, each priority drop clears one)."""
        value = 0
        for entry in self._active:
            if (entry >> 24) & 3 == group:
                level = (entry >> 26) >> self._ap_shift
                if level >> 5 == n:
                    value |= 1 << (level & 31)
        return value

    def _write_apr(self, group: int, n: int, value: int) -> None:
        """Save/restore (IHI 0069): writing the value last read is no change; writing a
        saved value into a register that reads 0 restores those active priorities (an
        INTID the PE no longer knows: the EOI that drops one names whichever); anything
        else is UNPREDICTABLE, recorded and ignored."""
        value &= 0xFFFFFFFF
        current = self._read_apr(group, n)
        if value == current:
            return
        name = f"ICC_AP{min(group, 1)}R{n}_EL1"
        if current:
            self._unpredictable(-1, "apr-write",
                                f"{name} written with {value:#x} while it reads {current:#x} "
                                "(only the value read, or a saved value over 0, is defined): "
                                "ignored")
            return
        for bit in range(32):
            if value >> bit & 1:
                prio = ((n << 5) | bit) << self._ap_shift
                self._active.append((prio << 26) | (group << 24) | _RESTORED)
        self._active.sort(key=lambda e: -(e >> 26))      # innermost (highest) last
        self._gic.kicked.add(self.cpu)

    def _read_ap1r(self, n: int) -> int:
        """ICC_AP1R<n>_EL1: the current Security state's bank."""
        return self._read_apr(self._g1(), n)

    def _write_ap1r(self, n: int, value: int) -> None:
        self._write_apr(self._g1(), n, value)

    def _write_sgi(self, value: int, group: int, name: str) -> None:
        """ICC_SGI1R_EL1 / ICC_SGI0R_EL1 / ICC_ASGI1R_EL1 (the same fields): the SGI asks for
        ``group`` and reaches a target only where it is configured in that group (with two
        Security states, the module docstring's rules)."""
        intid = ICC.SGI1R.INTID.get(value)
        if ICC.SGI1R.IRM.get(value):
            targets = [c for c in range(self._gic.num_cpus) if c != self.cpu]
        else:
            if ICC.SGI1R.RS.get(value):
                self._hub.report(Event(EventKind.IGNORED, f"ICC{self.cpu}", cpu=self.cpu,
                                       intid=intid, reason="rs-without-rss",
                                       detail=f"{name}.RS is non-zero but GICD_TYPER.RSS "
                                              "is 0: no PE targeted"))
                return
            upper = (ICC.SGI1R.Aff3.get(value) << 24 | ICC.SGI1R.Aff2.get(value) << 16
                     | ICC.SGI1R.Aff1.get(value) << 8)
            tl = ICC.SGI1R.TargetList.get(value)
            by_aff = self._gic.cpu_by_affinity
            targets = [c for b in range(16) if (tl >> b) & 1
                       if (c := by_aff.get(upper | b)) is not None]
        ns = self._two and not self._gic.secure
        for c in targets:
            sgi = self._gic.redists[c].sgi
            configured = sgi.group_of(intid)
            if self._two:
                if group == G1S and configured == G0:
                    pass                 # a Secure Group 1 request reaches Group 0
                elif configured != group:
                    continue
                if ns and configured != G1NS and sgi.nsacr_of(intid) < (
                        1 if configured == G0 else 2):
                    continue             # GICR_NSACR does not let Non-secure reach it
            elif configured != group:
                continue  # configured in the other group at the target: not forwarded
            sgi.raise_sgi(intid)
            if self._on[EventKind.SGI_GENERATED]:
                self._hub.emit(Event(EventKind.SGI_GENERATED, f"ICC{self.cpu}", cpu=c,
                                     intid=intid))
