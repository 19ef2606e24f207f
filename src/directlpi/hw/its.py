"""GICv3 Interrupt Translation Service (ITS), physical LPIs only (Arm IHI 0069, chapter 5).

An ITS turns a write of an EventID to ``GITS_TRANSLATER`` into an LPI on one
redistributor.  The DeviceID is not in the write: the ITS takes it from the bus
master that made it (the platform's ``device_id_of``, derived from firmware's
``msi-map`` / IORT ID mappings).  DeviceID selects a device table entry, whose ITT
maps the EventID to a physical INTID and a collection; the collection table maps
the collection to a redistributor.  All three tables live in memory, described by
``GITS_BASER<n>`` (device, collection) and by the MAPD commands (ITTs); software
fills them only through the command queue at ``GITS_CBASER``.

Choices this module makes where the architecture allows several (the strict one
where it catches driver bugs; two are lenient and say so -- no ITS cache, and MOVI
reloading the destination's configuration -- so a missing SYNC, or a missing INV
after a MOVI, goes unseen):

* **Tables.**  BASER0 is the device table (Type 1), BASER1 the collection table
  (Type 4), both with 8-byte entries; BASER2..7 are unimplemented (RAZ/WI).  Tables
  are flat: ``Indirect`` is RAZ/WI (two-level tables are not implemented).  Page sizes
  4, 16 and 64 KiB are all supported (0b11 reads back as 64 KiB).  ``GITS_TYPER.HCC``
  is 0: no collection is held in the ITS.  Entry formats are IMPLEMENTATION DEFINED;
  the model's are: device entry ``V | (ITT EventID bits - 1) << 1 | ITT address``
  (256-byte aligned), ITT entry ``1 | pINTID << 1 | ICID << 33``, collection entry
  ``1 << 63 | target`` (PE number, or RD address >> 16 when PTA is 1).
* **MOVI / MOVALL** move the pending state and make the destination RD reload the
  LPI's configuration (the architecture leaves a moved LPI's cached configuration to
  the implementation; Linux sends no INV after a MOVI, so the strict model cannot
  leave a stale copy there).  The destination records the LPI as pending with reason
  "its-move".
* **No caching.**  Every translation and command reads the tables from memory.  So a
  driver that writes a table itself, rather than by command, is not hidden by a
  cache -- but the tables are the ITS's memory: software must not write them at all
  once given to the ITS (the model does not police it, as no ITS can).
* **Non-coherent ITS** (machine option ``rd_coherent=False``): the Shareability
  fields of CBASER and BASER<n> read as Non-shareable and the ITS does not snoop the
  PEs' caches: a driver must clean each command before advancing CWRITER.
* **Command queue execution is lazy.**  Commands between CREADR and CWRITER run when
  software reads ``GITS_CREADR`` (the poll Linux does after every batch) or when the
  machine goes idle (:meth:`Its.catch_up`, called by the platform's run loop).  A
  driver that does not wait for the ITS sees its commands not done yet.  Commands run
  only while ``GITS_CTLR.Enabled`` is 1 and ``GITS_CBASER.Valid`` is 1.
* **Command errors stall the queue** (``GITS_TYPER.SEIS`` is 0, so the choice between
  ignoring and stalling is ours; stalling is the one no driver can miss): the command
  has no effect, an ``ITS_COMMAND_ERROR`` event carries the error number, and CREADR
  stays on the command with ``Stalled`` = 1 until software writes CWRITER with
  ``Retry`` = 1 (the command is executed again) or rewrites CBASER.  Error numbers are
  ``0x01 << 16 | command << 8 | cause`` as the specification and Linux's
  ``arm-gic-v3.h`` number them (CLEAR's are 0x0105xx there, not 0x0104xx).  Causes:
  0x01 DeviceID (beyond the device table, for every command naming a device) or
  target out of range, 0x02 ITT size or PE number out of range, 0x03 ICID out of
  range, 0x04 unmapped device, 0x05 EventID out of range, 0x06 pINTID out of range,
  0x07 unmapped interrupt, 0x09 unmapped collection.  An unknown command number, and
  a SYNC naming no RD (no error number exists for it), are UNPREDICTABLE: recorded
  and skipped.
* **Injected command errors** (machine option ``its_cmd_error``, a probability drawn
  from the ITS's own generator seeded from ``fault_seed``): a command other than SYNC
  (which has no error number) fails as the hardware had detected an error -- no effect,
  ``ITS_COMMAND_ERROR`` with reason ``fault-its-command-error`` and the command's
  architected error number for the first cause it can report (DeviceID out of range for
  MAPD and MOVALL, ICID out of range for MAPC and INVALL, unmapped device for the
  others), and the queue stalls as for any error.  A retry draws again.
* **MAPTI/MAPI of an EventID already mapped** is UNPREDICTABLE: recorded, ignored.
* **UNPREDICTABLE writes are ignored and recorded:** CBASER or BASER<n> while Enabled
  is 1, a CWRITER offset beyond the queue.  Writing CBASER resets CREADR to 0; a
  CWRITER left beyond the new queue is recorded too, and no command runs until
  CWRITER is written again.
* **Translation failures** (ITS disabled, a master with no DeviceID, DeviceID beyond
  the device table or unmapped, EventID beyond the device's ITT, unmapped EventID,
  unmapped collection) drop the MSI with an ``MSI_DROPPED`` event naming the reason;
  the architecture lets an implementation drop them silently, the model never does.
  A target RD whose LPIs are off ignores the LPI (recorded by the RD).
* Table or command-queue addresses outside RAM read as zero and ignore writes, with
  an UNPREDICTABLE event: nothing raises out of the bus.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.memory import PA_LIMIT, PhysicalMemory
from directlpi.hw.mmio import MmioFrame, Tables
from directlpi.hw.regs import GITS, GITS_TRANSLATION, ID_REGISTER_VALUES, LPI_BASE, Reg

if TYPE_CHECKING:
    from directlpi.hw.gic import GIC

#: Implementer 0x43B (Arm's JEP106 code), product 'T'.
ITS_IIDR_VALUE: Final = (0x54 << 24) | (1 << 12) | 0x43B

DEVICE_ID_BITS: Final = 17
"""DeviceID bits: PCI requester IDs (16 bits) and, above them, platform devices."""
EVENT_ID_BITS: Final = 16
ENTRY_BYTES: Final = 8
CMD_BYTES: Final = 32
BASER_DEVICE, BASER_COLLECTION = 0, 1
TYPE_DEVICE, TYPE_COLLECTION = 1, 4

# Command numbers (GITS command encoding, DW0 [7:0]).
MOVI, INT, CLEAR, SYNC, MAPD, MAPC, MAPTI, MAPI, INV, INVALL, MOVALL, DISCARD = (
    0x01, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F)
COMMAND_NAMES: Final = {MOVI: "MOVI", INT: "INT", CLEAR: "CLEAR", SYNC: "SYNC", MAPD: "MAPD",
                 MAPC: "MAPC", MAPTI: "MAPTI", MAPI: "MAPI", INV: "INV", INVALL: "INVALL",
                 MOVALL: "MOVALL", DISCARD: "DISCARD"}

# Causes (bits [7:0] of a command error number).
DEVICE_OOR, SIZE_OOR, COLLECTION_OOR, UNMAPPED_DEVICE, ID_OOR, PHYSICALID_OOR = range(1, 7)
UNMAPPED_INTERRUPT, UNMAPPED_COLLECTION = 0x07, 0x09
CAUSES: Final = {DEVICE_OOR: "DeviceID or target out of range", SIZE_OOR: "size or PE out of range",
          COLLECTION_OOR: "ICID out of range", UNMAPPED_DEVICE: "unmapped device",
          ID_OOR: "EventID out of range", PHYSICALID_OOR: "pINTID out of range",
          UNMAPPED_INTERRUPT: "unmapped interrupt", UNMAPPED_COLLECTION: "unmapped collection"}


#: The command field of an error number where it is not the command number: CLEAR's
#: errors are 0x0105xx (Linux's E_ITS_CLEAR_UNMAPPED_INTERRUPT, as KVM reports it).
_ERROR_COMMAND: Final = {CLEAR: 0x05}


def command_error(command: int, cause: int) -> int:
    """The architected error number of ``cause`` for ``command`` (e.g. 0x010a04)."""
    return 0x010000 | _ERROR_COMMAND.get(command, command) << 8 | cause


_ENABLED: Final = GITS.CTLR.Enabled.mask
_QUIESCENT: Final = GITS.CTLR.Quiescent.mask
_CB_VALID: Final = GITS.CBASER.Valid.mask
_CB_SIZE: Final = GITS.CBASER.Size
_CB_PA: Final = GITS.CBASER.Physical_Address.mask
_CB_SHARE: Final = GITS.CBASER.Shareability.mask
_CB_WRITABLE: Final = (GITS.CBASER.Size.mask | _CB_SHARE | _CB_PA | GITS.CBASER.OuterCache.mask
                | GITS.CBASER.InnerCache.mask | _CB_VALID)
_OFFSET: Final = GITS.CWRITER.Offset.mask
_RETRY: Final = GITS.CWRITER.Retry.mask
_STALLED: Final = GITS.CREADR.Stalled.mask
_B: Final = GITS.BASER
_B_VALID: Final = _B.Valid.mask
_B_SHARE: Final = _B.Shareability.mask
_B_WRITABLE: Final = (_B.Size.mask | _B.Page_Size.mask | _B_SHARE | _B.Physical_Address.mask
               | _B.OuterCache.mask | _B.InnerCache.mask | _B_VALID)
_PAGE_BYTES: Final = (0x1000, 0x4000, 0x10000, 0x10000)

_EV_DROPPED: Final = EventKind.MSI_DROPPED
_EV_TRANSLATED: Final = EventKind.ITS_TRANSLATED
_EV_COMMAND: Final = EventKind.ITS_COMMAND

DeviceIdOf = Callable[[str | None], int | None]


def _no_device_id(master: str | None) -> int | None:
    return None


class Its(MmioFrame):
    """The ITS_base control frame of one ITS, its tables and its command queue."""

    REGISTERS = GITS

    __slots__ = ("_baser", "_cbaser", "_cmd_error", "_coherent", "_creadr", "_cwriter",
                 "_enabled", "_fault_rng", "_gic", "_is_ram", "_memory", "_rd_bases",
                 "_stalled", "_tables", "_typer", "base", "device_id_of", "index", "pta",
                 "translation")

    def __init__(self, gic: GIC, hub: EventHub, memory: PhysicalMemory, *, index: int, base: int,
                 pta: bool = False, coherent: bool = True,
                 rd_bases: Sequence[int] = (),
                 is_ram: Callable[[int, int], bool] | None = None,
                 cmd_error: float = 0.0, fault_seed: int = 0) -> None:
        super().__init__(f"ITS{index}", hub)
        #: The its_cmd_error fault: the probability that a command fails, and its generator.
        self._cmd_error = cmd_error
        self._fault_rng = random.Random(fault_seed)
        self._gic = gic
        self._memory = memory
        self.index = index
        self.base = base
        self.pta = pta
        self._coherent = coherent
        #: RD_base address of each PE's redistributor (PTA = 1 targets).
        self._rd_bases = {b >> 16: cpu for cpu, b in enumerate(rd_bases)}
        self._is_ram = is_ram if is_ram is not None else (lambda addr, size: True)
        #: The DeviceID of a bus master (None: it has none; the platform sets this from
        #: firmware's ID mappings).
        self.device_id_of: DeviceIdOf = _no_device_id
        self._typer = (GITS.TYPER.Physical.put(1)
                       | GITS.TYPER.ITT_entry_size.put(ENTRY_BYTES - 1)
                       | GITS.TYPER.ID_bits.put(EVENT_ID_BITS - 1)
                       | GITS.TYPER.Devbits.put(DEVICE_ID_BITS - 1)
                       | GITS.TYPER.PTA.put(int(pta)))
        self._enabled = False
        self._cbaser = 0
        self._cwriter = 0
        self._creadr = 0
        self._stalled = False
        self._baser = [_B.Type.put(TYPE_DEVICE) | _B.Entry_Size.put(ENTRY_BYTES - 1),
                       _B.Type.put(TYPE_COLLECTION) | _B.Entry_Size.put(ENTRY_BYTES - 1)]
        #: Derived: BASER0/1 decoded (what :meth:`table` returns), on every write.
        self._tables: list[tuple[int, int] | None] = [None, None]
        self.translation = ItsTranslationFrame(self, hub)

    # -- dispatch configuration ------------------------------------------------

    def _indices(self, attr: str, reg: Reg) -> range:
        return range(2) if attr == "BASER" else range(reg.count)

    def _raz_indices(self, attr: str, reg: Reg) -> range:
        return range(2, reg.count) if attr == "BASER" else range(0)

    # -- state other blocks and tests read -------------------------------------

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def stalled(self) -> bool:
        return self._stalled

    def queue_bytes(self) -> int:
        """Size of the command queue in bytes."""
        return (_CB_SIZE.get(self._cbaser) + 1) * 0x1000

    def table(self, n: int) -> tuple[int, int] | None:
        """(address, bytes) of the table BASER<n> describes, or None when not Valid."""
        return self._tables[n]

    def _decode_table(self, n: int) -> tuple[int, int] | None:
        b = self._baser[n]
        if not b & _B_VALID:
            return None
        page_code = _B.Page_Size.get(b)
        page = _PAGE_BYTES[page_code]
        pa = b & _B.Physical_Address.mask
        # 64 KiB pages: PA bits [15:12] of the register hold address bits [51:48].
        wide = (pa & 0xFFFF_FFFF_0000) | ((pa >> 12) & 0xF) << 48
        return (wide if page == 0x10000 else pa & ~(page - 1)), (_B.Size.get(b) + 1) * page

    # -- memory ------------------------------------------------------------------

    def _load(self, addr: int, what: str) -> int:
        if addr + ENTRY_BYTES > PA_LIMIT or not self._is_ram(addr, ENTRY_BYTES):
            self._outside_ram(addr, what)
            return 0
        return self._memory.read_int(addr, ENTRY_BYTES)

    def _store(self, addr: int, value: int, what: str) -> None:
        if addr + ENTRY_BYTES > PA_LIMIT or not self._is_ram(addr, ENTRY_BYTES):
            self._outside_ram(addr, what)
            return
        self._memory.write_int(addr, value, ENTRY_BYTES)

    def _outside_ram(self, addr: int, what: str) -> None:
        self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, addr=addr,
                               reason="its-table-outside-ram",
                               detail=f"{what} at {addr:#x} is not in RAM: reads as zero, "
                                      "writes are lost"))

    def _entry_addr(self, n: int, index: int) -> int | None:
        """Address of entry ``index`` of table BASER<n>, or None (invalid, out of range)."""
        t = self._tables[n]
        if t is None or (index + 1) * ENTRY_BYTES > t[1]:
            return None
        return t[0] + index * ENTRY_BYTES

    def _device(self, device_id: int) -> tuple[int, int] | None:
        """(ITT address, EventID bits) of a mapped device, else None."""
        at = self._entry_addr(BASER_DEVICE, device_id)
        if at is None or device_id >> DEVICE_ID_BITS:
            return None
        dte = self._load(at, "device table entry")
        if not dte & 1:
            return None
        return dte & 0x000F_FFFF_FFFF_FF00, ((dte >> 1) & 0x1F) + 1

    def _target(self, icid: int) -> int | None:
        """The PE of a mapped collection, else None."""
        at = self._entry_addr(BASER_COLLECTION, icid)
        if at is None:
            return None
        cte = self._load(at, "collection table entry")
        if not cte >> 63:
            return None
        return self._cpu_of_target(cte & 0x7FFF_FFFF_FFFF_FFFF)

    def _collection(self, icid: int) -> tuple[int, int]:
        """(the PE of collection ``icid``, 0), or (-1, the command error: the ICID is out of
        the collection table, or the collection is not mapped)."""
        if self._entry_addr(BASER_COLLECTION, icid) is None:
            return -1, COLLECTION_OOR
        cpu = self._target(icid)
        return (-1, UNMAPPED_COLLECTION) if cpu is None else (cpu, 0)

    def _cpu_of_target(self, target: int) -> int | None:
        if self.pta:
            return self._rd_bases.get(target)
        return target if target < len(self._gic.redists) else None

    # -- translation -----------------------------------------------------------------

    def translate(self, event_id: int) -> None:
        """A write of ``event_id`` to GITS_TRANSLATER by ``hub.requester``."""
        hub = self._hub
        master = hub.requester
        if not self._enabled:
            self._drop(master, -1, event_id, "its-disabled", "GITS_CTLR.Enabled is 0")
            return
        device_id = self.device_id_of(master)
        if device_id is None:
            self._drop(master, -1, event_id, "no-device-id",
                       "the writer has no DeviceID in the firmware's ID map")
            return
        dev = self._device(device_id)
        if dev is None:
            self._drop(master, device_id, event_id, "unmapped-device",
                       f"DeviceID {device_id} is not mapped (MAPD)")
            return
        itt, bits = dev
        if event_id >> bits:
            self._drop(master, device_id, event_id, "event-out-of-range",
                       f"EventID {event_id} is beyond DeviceID {device_id}'s {bits}-bit ITT")
            return
        itte = self._load(itt + event_id * ENTRY_BYTES, "ITT entry")
        if not itte & 1:
            self._drop(master, device_id, event_id, "unmapped-event",
                       f"EventID {event_id} of DeviceID {device_id} is not mapped (MAPTI)")
            return
        intid = (itte >> 1) & 0xFFFF_FFFF
        icid = (itte >> 33) & 0xFFFF
        cpu = self._target(icid)
        if cpu is None:
            self._drop(master, device_id, event_id, "unmapped-collection",
                       f"collection {icid} is not mapped (MAPC)")
            return
        if hub.on[_EV_TRANSLATED]:
            hub.emit(Event(_EV_TRANSLATED, self.frame_name, cpu=cpu, intid=intid, addr=device_id,
                           value=event_id, master=master, register="GITS_TRANSLATER",
                           detail=f"DeviceID {device_id} EventID {event_id} -> LPI {intid} "
                                  f"on collection {icid}"))
        self._gic.redists[cpu].set_lpi_pending(intid, via="its")

    def _drop(self, master: str | None, device_id: int, event_id: int, reason: str,
              why: str) -> None:
        self._hub.report(Event(_EV_DROPPED, self.frame_name, addr=device_id, value=event_id,
                               master=master, reason=reason, register="GITS_TRANSLATER",
                               detail=f"MSI EventID {event_id} from "
                                      f"{'a CPU' if master is None else master} dropped: {why}"))

    # -- the command queue -----------------------------------------------------------

    def catch_up(self) -> bool:
        """Execute every command between CREADR and CWRITER (unless stalled); True if any
        was consumed."""
        if not self._enabled or self._stalled or not self._cbaser & _CB_VALID:
            return False
        size = self.queue_bytes()
        if self._cwriter >= size:
            return False        # a CWRITER beyond the queue (recorded at CBASER): nothing runs
        base = self._cbaser & _CB_PA
        start = self._creadr
        while self._creadr != self._cwriter:
            at = base + self._creadr
            words = [self._load(at + 8 * k, "ITS command") for k in range(4)]
            if not self._execute(words):
                self._stalled = True
                break
            self._creadr = (self._creadr + CMD_BYTES) % size
        return self._creadr != start

    def _execute(self, dw: list[int]) -> bool:
        """Run one command; False (and an ITS_COMMAND_ERROR) if it failed."""
        op = dw[0] & 0xFF
        name = COMMAND_NAMES.get(op)
        if name is None:
            self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name,
                                   addr=(self._cbaser & _CB_PA) + self._creadr, value=op,
                                   reason="its-unknown-command",
                                   detail=f"command number {op:#04x} is not a physical ITS "
                                          "command: skipped"))
            return True
        if self._cmd_error and op != SYNC and self._fault_rng.random() < self._cmd_error:
            cause = _INJECTED_CAUSE.get(op, UNMAPPED_DEVICE)
            code = command_error(op, cause)
            self._hub.report(Event(EventKind.ITS_COMMAND_ERROR, self.frame_name, value=code,
                                   addr=(self._cbaser & _CB_PA) + self._creadr,
                                   reason="fault-its-command-error",
                                   detail=f"{name} failed with error {code:#08x} (injected "
                                          "fault): no effect, the queue stalls"))
            return False
        cause = _HANDLERS[op](self, dw)
        if cause:
            code = command_error(op, cause)
            self._hub.report(Event(EventKind.ITS_COMMAND_ERROR, self.frame_name, value=code,
                                   addr=(self._cbaser & _CB_PA) + self._creadr,
                                   reason=name.lower(),
                                   detail=f"{name} failed with error {code:#08x} "
                                          f"({CAUSES[cause]}): no effect, the queue stalls"))
            return False
        if self._hub.on[_EV_COMMAND]:
            self._hub.emit(Event(_EV_COMMAND, self.frame_name, value=op, reason=name.lower(),
                                 detail=" ".join(f"{w:#018x}" for w in dw)))
        return True

    def _event_entry(self, dw: list[int]) -> tuple[int, int] | int:
        """(ITT entry address, EventID) of DW0's DeviceID and DW1's EventID, or the cause
        of failure (the device unmapped or out of range, the EventID beyond its ITT)."""
        device_id = dw[0] >> 32
        dev = self._device(device_id)
        if dev is None:
            return self._device_cause(device_id)
        itt, bits = dev
        event_id = dw[1] & 0xFFFF_FFFF
        if event_id >> bits:
            return ID_OOR
        return itt + event_id * ENTRY_BYTES, event_id

    def _lookup(self, dw: list[int]) -> tuple[int, int, int] | int:
        """(ITT entry address, pINTID, ICID) of DW0's DeviceID and DW1's EventID, or the
        cause of failure."""
        entry = self._event_entry(dw)
        if isinstance(entry, int):
            return entry
        at = entry[0]
        itte = self._load(at, "ITT entry")
        if not itte & 1:
            return UNMAPPED_INTERRUPT
        return at, (itte >> 1) & 0xFFFF_FFFF, (itte >> 33) & 0xFFFF

    def _device_cause(self, device_id: int) -> int:
        """Why ``device_id`` has no mapping: beyond the device table, or not mapped."""
        if device_id >> DEVICE_ID_BITS or self._entry_addr(BASER_DEVICE, device_id) is None:
            return DEVICE_OOR
        return UNMAPPED_DEVICE

    def _mapped(self, dw: list[int]) -> tuple[int, int, int, int] | int:
        """As :meth:`_lookup`, plus the PE of the interrupt's collection."""
        hit = self._lookup(dw)
        if isinstance(hit, int):
            return hit
        cpu = self._target(hit[2])
        if cpu is None:
            return UNMAPPED_COLLECTION
        return (*hit, cpu)

    def _cmd_mapd(self, dw: list[int]) -> int:
        device_id = dw[0] >> 32
        bits = (dw[1] & 0x1F) + 1
        at = self._entry_addr(BASER_DEVICE, device_id)
        if at is None or device_id >> DEVICE_ID_BITS:
            return DEVICE_OOR
        valid = dw[2] >> 63
        if valid and bits > EVENT_ID_BITS:
            return SIZE_OOR
        itt = dw[2] & 0x000F_FFFF_FFFF_FF00
        self._store(at, (1 | (bits - 1) << 1 | itt) if valid else 0, "device table entry")
        return 0

    def _cmd_mapc(self, dw: list[int]) -> int:
        icid = dw[2] & 0xFFFF
        target = (dw[2] >> 16) & 0xF_FFFF_FFFF
        at = self._entry_addr(BASER_COLLECTION, icid)
        if at is None:
            return COLLECTION_OOR
        valid = dw[2] >> 63
        if valid and self._cpu_of_target(target) is None:
            return SIZE_OOR
        self._store(at, (1 << 63 | target) if valid else 0, "collection table entry")
        return 0

    def _cmd_mapti(self, dw: list[int]) -> int:
        entry = self._event_entry(dw)
        if isinstance(entry, int):
            return entry
        at, event_id = entry
        intid = event_id if dw[0] & 0xFF == MAPI else dw[1] >> 32
        if not LPI_BASE <= intid < 1 << self._gic.id_bits:
            return PHYSICALID_OOR
        icid = dw[2] & 0xFFFF
        if self._entry_addr(BASER_COLLECTION, icid) is None:
            return COLLECTION_OOR
        if self._load(at, "ITT entry") & 1:
            # Remapping a mapped EventID is UNPREDICTABLE (Linux moves one with MOVI, and
            # says so in its_vlpi_set_doorbell): a driver that maps twice without DISCARD.
            self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, value=event_id,
                                   addr=dw[0] >> 32, reason="its-mapti-mapped-event",
                                   detail=f"MAPTI of EventID {event_id} of DeviceID "
                                          f"{dw[0] >> 32:#x}, which is mapped already: "
                                          "ignored (DISCARD it first, or MOVI it)"))
            return 0
        self._store(at, 1 | intid << 1 | icid << 33, "ITT entry")
        return 0

    def _cmd_inv(self, dw: list[int]) -> int:
        hit = self._mapped(dw)
        if isinstance(hit, int):
            return hit
        rd = self._gic.redists[hit[3]]
        if rd.implements(hit[1]):
            rd.reload_config(hit[1])
        return 0

    def _cmd_invall(self, dw: list[int]) -> int:
        icid = dw[2] & 0xFFFF
        cpu, err = self._collection(icid)
        if err:
            return err
        self._gic.redists[cpu].reload_all_config()
        return 0

    def _cmd_sync(self, dw: list[int]) -> int:
        # Every command has taken effect when it is executed: SYNC has nothing to wait for.
        # An RDbase naming no RD has no architected error number (Linux defines none):
        # UNPREDICTABLE, recorded, and the SYNC is a no-op.
        target = (dw[2] >> 16) & 0xF_FFFF_FFFF
        if self._cpu_of_target(target) is None:
            self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, value=target,
                                   reason="its-sync-bad-target",
                                   detail=f"SYNC names RDbase {target:#x}, which is no "
                                          "redistributor: ignored"))
        return 0

    def _cmd_int(self, dw: list[int]) -> int:
        hit = self._mapped(dw)
        if isinstance(hit, int):
            return hit
        self._gic.redists[hit[3]].set_lpi_pending(hit[1], via="its")
        return 0

    def _cmd_clear(self, dw: list[int]) -> int:
        hit = self._mapped(dw)
        if isinstance(hit, int):
            return hit
        self._gic.redists[hit[3]].remove_pending(hit[1], "clear")
        return 0

    def _cmd_discard(self, dw: list[int]) -> int:
        hit = self._lookup(dw)
        if isinstance(hit, int):
            return hit
        at, intid, icid = hit
        cpu = self._target(icid)
        if cpu is not None:
            self._gic.redists[cpu].remove_pending(intid, "discard")
        self._store(at, 0, "ITT entry")
        return 0

    def _cmd_movi(self, dw: list[int]) -> int:
        hit = self._mapped(dw)
        if isinstance(hit, int):
            return hit
        at, intid, _icid, cpu = hit
        icid = dw[2] & 0xFFFF
        new, err = self._collection(icid)
        if err:
            return err
        self._store(at, 1 | intid << 1 | icid << 33, "ITT entry")
        if new != cpu:
            self._move(cpu, new, intid)
        return 0

    def _move(self, src: int, dst: int, intid: int) -> None:
        """An LPI now targets ``dst``: the destination reloads its configuration (it may
        hold a copy from an earlier time the LPI targeted it; Linux sends no INV after a
        MOVI, so the ITS must make the new target consistent) and takes over its pending
        state ("its-move")."""
        new = self._gic.redists[dst]
        if new.implements(intid):
            new.reload_config(intid)
        if self._gic.redists[src].remove_pending(intid):
            new.set_lpi_pending(intid, via="its-move")

    def _cmd_movall(self, dw: list[int]) -> int:
        src = self._cpu_of_target((dw[2] >> 16) & 0xF_FFFF_FFFF)
        dst = self._cpu_of_target((dw[3] >> 16) & 0xF_FFFF_FFFF)
        if src is None or dst is None:
            return DEVICE_OOR
        if src != dst:
            for intid in sorted(self._gic.redists[src].lpi_pending):
                self._move(src, dst, intid)
        return 0

    # -- register handlers ---------------------------------------------------------

    def _r_CTLR(self) -> int:
        return _ENABLED if self._enabled else _QUIESCENT

    def _w_CTLR(self, value: int) -> None:
        enable = bool(value & _ENABLED)
        if enable == self._enabled:
            return
        if not enable:
            # Quiescent once disabled: commands are executed as they are read, so
            # nothing is in flight; unexecuted commands stay queued.
            self._enabled = False
            return
        self._enabled = True

    def _r_IIDR(self) -> int:
        return ITS_IIDR_VALUE

    def _r_TYPER(self) -> int:
        return self._typer

    def _locked(self, name: str, value: int) -> bool:
        if not self._enabled:
            return False
        self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, value=value,
                               reason="its-baser-while-enabled",
                               detail=f"write of {value:#x} to {name} while GITS_CTLR.Enabled "
                                      "is 1: ignored"))
        return True

    def _r_CBASER(self) -> int:
        return self._cbaser

    def _w_CBASER(self, value: int) -> None:
        if self._locked("GITS_CBASER", value):
            return
        writable = _CB_WRITABLE if self._coherent else _CB_WRITABLE & ~_CB_SHARE
        self._cbaser = value & writable
        self._creadr = 0
        self._stalled = False
        if self._cbaser & _CB_VALID and self._cwriter >= self.queue_bytes():
            self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, value=self._cwriter,
                                   reason="cwriter-beyond-queue",
                                   detail=f"GITS_CWRITER offset {self._cwriter:#x} lies beyond "
                                          f"the new {self.queue_bytes():#x}-byte command queue:"
                                          " no command runs until CWRITER is written"))

    def _r_CWRITER(self) -> int:
        return self._cwriter

    def _w_CWRITER(self, value: int) -> None:
        offset = value & _OFFSET
        if self._cbaser & _CB_VALID and offset >= self.queue_bytes():
            self._hub.report(Event(EventKind.UNPREDICTABLE, self.frame_name, value=value,
                                   reason="cwriter-beyond-queue",
                                   detail=f"GITS_CWRITER offset {offset:#x} is beyond the "
                                          f"{self.queue_bytes():#x}-byte command queue: ignored"))
            return
        self._cwriter = offset
        if value & _RETRY and self._stalled:
            self._stalled = False

    def _r_CREADR(self) -> int:
        self.catch_up()
        return self._creadr | (_STALLED if self._stalled else 0)

    def _r_BASER(self, n: int) -> int:
        return self._baser[n]

    def _w_BASER(self, n: int, value: int) -> None:
        if self._locked(f"GITS_BASER{n}", value):
            return
        writable = _B_WRITABLE if self._coherent else _B_WRITABLE & ~_B_SHARE
        ro = self._baser[n] & ~_B_WRITABLE
        value &= writable
        if _B.Page_Size.get(value) == 3:
            value = _B.Page_Size.replace(value, 2)
        self._baser[n] = ro | value
        self._tables[n] = self._decode_table(n)

    def _r_IDREGS(self, n: int) -> int:
        return ID_REGISTER_VALUES[0xFFD0 + 4 * n]


_HANDLERS: dict[int, Callable[[Its, list[int]], int]] = {
    MAPD: Its._cmd_mapd, MAPC: Its._cmd_mapc, MAPTI: Its._cmd_mapti, MAPI: Its._cmd_mapti,
    INV: Its._cmd_inv, INVALL: Its._cmd_invall, SYNC: Its._cmd_sync, INT: Its._cmd_int,
    CLEAR: Its._cmd_clear, DISCARD: Its._cmd_discard, MOVI: Its._cmd_movi,
    MOVALL: Its._cmd_movall,
}


#: The cause an injected error reports, per command (the others: unmapped device).
_INJECTED_CAUSE: Final = {MAPD: DEVICE_OOR, MOVALL: DEVICE_OOR, MAPC: COLLECTION_OOR,
                   INVALL: COLLECTION_OOR}


class ItsTranslationFrame(MmioFrame):
    """The translation frame (ITS_base + 0x10000): GITS_TRANSLATER, 16- or 32-bit writes."""

    REGISTERS = GITS_TRANSLATION

    __slots__ = ("its",)

    def __init__(self, its: Its, hub: EventHub) -> None:
        super().__init__(f"ITS{its.index}.TRANSLATER", hub)
        self.its = its

    def _build_tables(self) -> Tables:
        rtab, wtab, words = super()._build_tables()
        off = GITS_TRANSLATION.TRANSLATER.offset
        wtab[(off << 4) | 2] = wtab[(off << 4) | 4]
        return rtab, wtab, words

    def _w_TRANSLATER(self, value: int) -> None:
        self.its.translate(value)
