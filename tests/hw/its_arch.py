"""Literal ITS and GICv2m facts from the architecture, and a rig that programs an ITS.

Offsets, fields and command encodings below come from Arm IHI 0069 (GICv3/v4,
chapter "The ITS" and its command descriptions), cross-checked against Linux's
``include/linux/irqchip/arm-gic-v3.h`` / ``drivers/irqchip/irq-gic-v3-its.c`` and
QEMU's ``hw/intc/arm_gicv3_its.c``; GICv2m from Linux's ``irq-gic-v2m.c``.  They are
deliberately *not* imported from the model (``directlpi.hw.regs`` / ``hw.its``): a
typo in the model must not be able to pass on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from directlpi import Event, EventKind, Platform
from tests.hw import arch

# -- memory map (QEMU virt) -------------------------------------------------------------

GICD_BASE = 0x0800_0000
ITS_BASE = 0x0808_0000
TRANSLATION_FRAME = 0x10000            # ITS_base + 64 KiB
V2M_BASE = 0x0802_0000

# -- ITS_base frame --------------------------------------------------------------------

GITS_CTLR = 0x0000
GITS_IIDR = 0x0004
GITS_TYPER = 0x0008
GITS_CBASER = 0x0080
GITS_CWRITER = 0x0088
GITS_CREADR = 0x0090
GITS_BASER0 = 0x0100                   # GITS_BASER<n> at 0x0100 + 8n
GITS_PIDR2 = 0xFFE8
GITS_TRANSLATER = 0x0040               # in the translation frame

CTLR_ENABLED = 1 << 0
CTLR_QUIESCENT = 1 << 31

# GITS_TYPER
TYPER_PHYSICAL = 1 << 0
TYPER_VIRTUAL = 1 << 1
TYPER_CCT = 1 << 2
TYPER_SEIS = 1 << 18
TYPER_PTA = 1 << 19


def typer_itt_entry_size(typer: int) -> int:
    return ((typer >> 4) & 0xF) + 1


def typer_id_bits(typer: int) -> int:
    return ((typer >> 8) & 0x1F) + 1


def typer_devbits(typer: int) -> int:
    return ((typer >> 13) & 0x1F) + 1


def typer_hcc(typer: int) -> int:
    return (typer >> 24) & 0xFF


# GITS_CBASER / GITS_BASER<n> common fields
VALID = 1 << 63
INDIRECT = 1 << 62
SHAREABILITY_SHIFT = 10
SH_INNER = 0b01 << SHAREABILITY_SHIFT
SH_MASK = 0b11 << SHAREABILITY_SHIFT
INNER_RAWAWB = 0b111 << 59             # InnerCache [61:59]
OUTER_RAWAWB = 0b111 << 53             # OuterCache [55:53]
BASER_TYPE_SHIFT = 56                  # Type [58:56]
BASER_ENTRY_SIZE_SHIFT = 48            # Entry_Size [52:48], bytes - 1
PAGE_4K, PAGE_16K, PAGE_64K = 0b00 << 8, 0b01 << 8, 0b10 << 8
TYPE_DEVICE, TYPE_COLLECTION = 1, 4

# GITS_CWRITER / GITS_CREADR
CWRITER_RETRY = 1 << 0
CREADR_STALLED = 1 << 0
OFFSET_MASK = 0xF_FFE0                 # Offset [19:5]

# -- command numbers (DW0 [7:0]) ---------------------------------------------------------

MOVI, INT, CLEAR, SYNC, MAPD, MAPC, MAPTI, MAPI, INV, INVALL, MOVALL, DISCARD = (
    0x01, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F)
COMMAND_NUMBERS = (MOVI, INT, CLEAR, SYNC, MAPD, MAPC, MAPTI, MAPI, INV, INVALL, MOVALL,
                   DISCARD)

Command = tuple[int, int, int, int]


def _dw0(op: int, device_id: int = 0) -> int:
    return op | (device_id & 0xFFFF_FFFF) << 32


def _dw1(event_id: int, pintid: int = 0) -> int:
    return (event_id & 0xFFFF_FFFF) | (pintid & 0xFFFF_FFFF) << 32


def _rdbase(rdbase: int) -> int:
    return (rdbase & 0xF_FFFF_FFFF) << 16          # [51:16]


def mapd(device_id: int, itt: int, event_bits: int, valid: bool = True) -> Command:
    """MAPD: DW1 Size [4:0] = EventID bits - 1; DW2 ITT_addr [51:8], V [63]."""
    return (_dw0(MAPD, device_id), (event_bits - 1) & 0x1F,
            (itt & 0x000F_FFFF_FFFF_FF00) | (VALID if valid else 0), 0)


def mapc(icid: int, rdbase: int, valid: bool = True) -> Command:
    """MAPC: DW2 ICID [15:0], RDbase [51:16], V [63]."""
    return (MAPC, 0, (icid & 0xFFFF) | _rdbase(rdbase) | (VALID if valid else 0), 0)


def mapti(device_id: int, event_id: int, pintid: int, icid: int) -> Command:
    return (_dw0(MAPTI, device_id), _dw1(event_id, pintid), icid & 0xFFFF, 0)


def mapi(device_id: int, event_id: int, icid: int) -> Command:
    return (_dw0(MAPI, device_id), _dw1(event_id), icid & 0xFFFF, 0)


def movi(device_id: int, event_id: int, icid: int) -> Command:
    return (_dw0(MOVI, device_id), _dw1(event_id), icid & 0xFFFF, 0)


def _dev_event(op: int, device_id: int, event_id: int) -> Command:
    return (_dw0(op, device_id), _dw1(event_id), 0, 0)


def int_(device_id: int, event_id: int) -> Command:
    return _dev_event(INT, device_id, event_id)


def clear(device_id: int, event_id: int) -> Command:
    return _dev_event(CLEAR, device_id, event_id)


def inv(device_id: int, event_id: int) -> Command:
    return _dev_event(INV, device_id, event_id)


def discard(device_id: int, event_id: int) -> Command:
    return _dev_event(DISCARD, device_id, event_id)


def invall(icid: int) -> Command:
    return (INVALL, 0, icid & 0xFFFF, 0)


def sync(rdbase: int) -> Command:
    return (SYNC, 0, _rdbase(rdbase), 0)


def movall(rdbase1: int, rdbase2: int) -> Command:
    """MOVALL: RDbase1 in DW2 [51:16], RDbase2 in DW3 [51:16]."""
    return (MOVALL, 0, _rdbase(rdbase1), _rdbase(rdbase2))


# -- memory the tests give the ITS and the RDs ---------------------------------------------

PROP = 0x4100_0000
PEND = 0x4200_0000                     # + cpu * PEND_STRIDE
PEND_STRIDE = 0x20_0000
CMDQ = 0x4800_0000
DEVTAB = 0x4810_0000
COLTAB = 0x4820_0000
ITT_BASE = 0x4900_0000                 # + device * ITT_STRIDE
ITT_STRIDE = 0x10_0000
LPI_BITS = 16
LPI = 8192

DEV, DEV2, STRANGER = "0000:00:01.0", "0000:00:02.0", "0000:00:1f.7"
DEVICE_IDS = {DEV: 8, DEV2: 9}


def device_ids(table: dict[str, int]) -> Callable[[str | None], int | None]:
    """An ``Its.device_id_of``: the DeviceID of each master in ``table``, None for others."""
    return lambda master: None if master is None else table.get(master)


class Runaway(Exception):
    """A single register access made the model run far more commands than a queue holds."""


def lpi_config(priority: int = 0xA0, enabled: bool = True) -> int:
    """An LPI configuration byte: priority [7:2], RES1 bit 1, Enable bit 0."""
    return (priority & 0xFC) | arch.LPI_RES1 | (arch.LPI_ENABLE if enabled else 0)


class Rig:
    """A platform with one ITS at the QEMU virt address, its RDs' LPIs on, and (unless
    ``program`` is False) the ITS given a command queue, a device and a collection table
    and enabled.  Commands are written to the queue in RAM exactly as a driver does."""

    def __init__(self, *, cpus: int = 4, pta: bool = False, program: bool = True,
                 queue_pages: int = 1, dev_page: int = PAGE_4K, dev_pages: int = 1,
                 col_pages: int = 1, enable: bool = True, lpi_cpus: Iterable[int] | None = None,
                 **options: object) -> None:
        self.plat = Platform.bare(cpus=cpus, lpi_id_bits=LPI_BITS, its=(ITS_BASE,),
                                  its_pta=pta, **options)  # type: ignore[arg-type]
        self.pta = pta
        self.cpus = cpus
        self.bus = self.plat.bus
        self.memory = self.plat.memory
        self.plat.machine.its[0].device_id_of = device_ids(DEVICE_IDS)
        self.events: list[Event] = []
        self.plat.observe(self.events.append, [
            EventKind.ITS_COMMAND_ERROR, EventKind.MSI_DROPPED, EventKind.UNPREDICTABLE,
            EventKind.BAD_ACCESS, EventKind.ITS_COMMAND, EventKind.ITS_TRANSLATED])
        self.wptr = 0
        self.queue_bytes = queue_pages * 0x1000
        self._bring_up_rds(range(cpus) if lpi_cpus is None else lpi_cpus)
        if program:
            self.write(GITS_CBASER, CMDQ | VALID | SH_INNER | INNER_RAWAWB | (queue_pages - 1))
            self.write(GITS_CWRITER, 0)
            self.write(GITS_BASER0, DEVTAB | VALID | SH_INNER | INNER_RAWAWB | dev_page
                       | (dev_pages - 1))
            self.write(GITS_BASER0 + 8, COLTAB | VALID | SH_INNER | INNER_RAWAWB | PAGE_4K
                       | (col_pages - 1))
            if enable:
                self.write(GITS_CTLR, CTLR_ENABLED, 4)

    def _bring_up_rds(self, lpi_cpus: Iterable[int]) -> None:
        bus = self.bus
        lpi_cpus = set(lpi_cpus)
        bus.write(GICD_BASE + arch.GICD_CTLR, 1 << 1, 4)          # EnableGrp1 (DS = 1)
        self.memory.fill(PROP, (1 << LPI_BITS) - LPI, lpi_config())
        attrs = SH_INNER | (0b111 << 7)                          # Inner shareable, RaWaWb
        for cpu in range(self.cpus):
            rd = self.plat.gicr_base(cpu)
            bus.write(rd + arch.GICR_WAKER, 0, 4)
            while bus.read(rd + arch.GICR_WAKER, 4) & arch.WAKER_CHILDREN_ASLEEP:
                pass
            if cpu in lpi_cpus:
                bus.write(rd + arch.GICR_PROPBASER, PROP | attrs | (LPI_BITS - 1), 8)
                bus.write(rd + arch.GICR_PENDBASER, PEND + cpu * PEND_STRIDE | attrs, 8)
                bus.write(rd + arch.GICR_CTLR, arch.CTLR_ENABLE_LPIS, 4)
            self.plat.cpu(cpu).write_sysreg("ICC_PMR_EL1", 0xF0)
            self.plat.cpu(cpu).write_sysreg("ICC_IGRPEN1_EL1", 1)

    # -- registers ----------------------------------------------------------------------

    def read(self, off: int, size: int = 8) -> int:
        return self.bus.read(ITS_BASE + off, size)

    def write(self, off: int, value: int, size: int = 8) -> None:
        self.bus.write(ITS_BASE + off, value, size)

    def creadr(self) -> int:
        """Read GITS_CREADR (which is what lets the model execute queued commands)."""
        return self.read(GITS_CREADR)

    def rdbase(self, cpu: int) -> int:
        """The RDbase field naming PE ``cpu``'s RD: its PE number (PTA 0) or its physical
        address bits [51:16] (PTA 1)."""
        return self.plat.gicr_base(cpu) >> 16 if self.pta else cpu

    # -- the command queue ----------------------------------------------------------------

    def place(self, cmd: Sequence[int], at: int | None = None) -> int:
        """Write one 32-byte command into the queue (at ``at`` or the write pointer)."""
        off = self.wptr if at is None else at
        for k, word in enumerate(cmd):
            self.memory.write_int(CMDQ + off + 8 * k, word & (1 << 64) - 1, 8)
        return off

    def put(self, *cmds: Sequence[int]) -> int:
        """Queue ``cmds`` and advance GITS_CWRITER; returns the offset of the first."""
        first = self.wptr
        for cmd in cmds:
            self.place(cmd)
            self.wptr = (self.wptr + 32) % self.queue_bytes
        self.write(GITS_CWRITER, self.wptr)
        return first

    def run(self, *cmds: Sequence[int]) -> None:
        """Queue ``cmds`` and wait for the ITS (poll CREADR), which must not stall."""
        self.put(*cmds)
        creadr = self.creadr()
        assert creadr == self.wptr, f"queue stopped at {creadr:#x}: {self.errors()}"

    def setup(self, *, events: int = 4) -> None:
        """Every PE's collection (ICID k -> PE k), device 8 with an ``events``-bit ITT, and
        EventID 0 -> LPI 8192 and EventID 1 -> LPI 8193 on collections 1 and 2."""
        self.run(*(mapc(c, self.rdbase(c)) for c in range(self.cpus)),
                 mapd(8, itt(8), events),
                 mapti(8, 0, LPI, 1), mapti(8, 1, LPI + 1, 2))

    # -- MSIs, LPIs, what happened ------------------------------------------------------

    def msi(self, event_id: int, master: str | None = DEV, size: int = 4) -> None:
        self.bus.write(ITS_BASE + TRANSLATION_FRAME + GITS_TRANSLATER, event_id, size,
                       master=master)

    def config(self, intid: int, priority: int = 0xA0, enabled: bool = True) -> None:
        """Write an LPI's configuration byte in memory (no invalidation)."""
        self.memory.write(PROP + intid - LPI, bytes((lpi_config(priority, enabled),)))

    def hppi(self, cpu: int) -> int:
        return self.plat.cpu(cpu).read_sysreg("ICC_HPPIR1_EL1")

    def ack(self, cpu: int) -> int:
        intid = self.plat.cpu(cpu).read_sysreg("ICC_IAR1_EL1")
        if intid != arch.SPURIOUS:
            self.plat.cpu(cpu).write_sysreg("ICC_EOIR1_EL1", intid)
        return intid

    def pending(self) -> dict[int, list[int]]:
        """The LPIs pending on each RD (RDs with none left out)."""
        out = {}
        for cpu in range(self.cpus):
            held = sorted(self.plat.machine.redistributor(cpu).lpi_pending)
            if held:
                out[cpu] = held
        return out

    def of(self, kind: EventKind) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def errors(self) -> list[int]:
        return [e.value for e in self.of(EventKind.ITS_COMMAND_ERROR)]

    def drops(self) -> list[str]:
        return [e.reason for e in self.of(EventKind.MSI_DROPPED)]

    def guard(self, limit: int = 40_000) -> list[int]:
        """Raise :class:`Runaway` once more than ``limit`` commands ran since the last reset
        of the returned counter (a queue holds at most 32768)."""
        count = [0]

        def tick(event: Event) -> None:
            if event.kind == EventKind.UNPREDICTABLE and event.reason != "its-unknown-command":
                return
            count[0] += 1
            if count[0] > limit:
                raise Runaway(f"more than {limit} commands executed by one access")

        self.plat.observe(tick, [EventKind.ITS_COMMAND, EventKind.ITS_COMMAND_ERROR,
                                 EventKind.UNPREDICTABLE])
        return count


def itt(device_id: int) -> int:
    return ITT_BASE + device_id * ITT_STRIDE


def all_quiet(rig: Rig, cpus: Iterable[int] | None = None) -> bool:
    """No LPI pending on any RD and no PE sees an interrupt."""
    chosen = range(rig.cpus) if cpus is None else cpus
    return not rig.pending() and all(rig.hppi(c) == arch.SPURIOUS for c in chosen)
