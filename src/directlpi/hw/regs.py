"""The one register map of the model (Arm IHI 0069, GICv3 and GICv4 Architecture Specification).

Every distributor (GICD), redistributor (GICR RD_base and SGI_base frames) and
CPU interface (ICC_*) register the model implements is declared here once: its
offset (or system register name), natural width, access kind, array shape and
fields.  The MMIO dispatcher (:mod:`directlpi.hw.mmio`) builds its tables from
these declarations, and handlers are found by register name.

Field style: ``Field(lsb, width, access)``; a register exposes its fields as
attributes, e.g. ``GICR.TYPER.DirectLPI.mask``.

Tests deliberately do *not* import offsets from here: they use the literal
values from the architecture, so a typo cannot pass on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final


class Access(Enum):
    """How a register (or field) responds to reads and writes."""

    RW = "RW"
    RO = "RO"
    """Writes are ignored (and recorded as a bad access)."""
    WO = "WO"
    """Reads return 0 (and are recorded as a bad access)."""
    W1S = "W1S"
    """Reads return state; writing 1 to a bit sets it, 0 has no effect."""
    W1C = "W1C"
    """Reads return state; writing 1 to a bit clears it, 0 has no effect."""
    RAZ_WI = "RAZ/WI"
    """Implemented as always zero in this model's configuration; not a bad access."""
    RES0 = "RES0"
    """A field software must write as zero; it reads as zero."""
    RES1 = "RES1"


@dataclass(frozen=True, slots=True)
class Field:
    """A bit field ``[lsb + width - 1 : lsb]`` of a register."""

    lsb: int
    width: int = 1
    access: Access = Access.RW
    doc: str = ""

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def get(self, reg: int) -> int:
        """The field's value in register value ``reg``."""
        return (reg >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int) -> int:
        """``value`` placed at the field's position (excess bits dropped)."""
        return (value & ((1 << self.width) - 1)) << self.lsb

    def replace(self, reg: int, value: int) -> int:
        """``reg`` with this field set to ``value``."""
        return (reg & ~self.mask) | self.put(value)


@dataclass(frozen=True)
class Reg:
    """One register, or an array ``<NAME><n>`` of identical registers."""

    name: str
    offset: int
    """Byte offset in its frame (MMIO registers); -1 for system registers."""
    width: int = 32
    access: Access = Access.RW
    count: int = 1
    """Number of array elements (1 for a single register)."""
    stride: int = 0
    """Bytes between array elements; defaults to the register width in bytes."""
    byte_access: bool = False
    """Whether 8-bit accesses are architecturally supported (IPRIORITYR)."""
    fields: Mapping[str, Field] = field(default_factory=dict)
    doc: str = ""
    feature: str = ""
    """Name of the configuration feature that implements this register ("" = always)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        if not self.stride:
            object.__setattr__(self, "stride", self.width // 8)

    def __getattr__(self, name: str) -> Field:
        # Only reached for names that are not dataclass attributes: the fields.
        fields = object.__getattribute__(self, "fields")
        try:
            return fields[name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(f"register {self.name} has no field {name!r}") from None

    @property
    def size(self) -> int:
        """Natural access size in bytes."""
        return self.width // 8

    def at(self, n: int = 0) -> int:
        """Offset of element ``n``."""
        return self.offset + n * self.stride


def registers(namespace: type) -> Iterator[Reg]:
    """The :class:`Reg` declarations of a frame namespace, in offset order."""
    regs = [v for v in vars(namespace).values() if isinstance(v, Reg)]
    return iter(sorted(regs, key=lambda r: r.offset))


RW, RO, WO, W1S, W1C, RAZ_WI, RES0, RES1 = (
    Access.RW,
    Access.RO,
    Access.WO,
    Access.W1S,
    Access.W1C,
    Access.RAZ_WI,
    Access.RES0,
    Access.RES1,
)

# Peripheral / component ID registers (0xFFD0..0xFFFC), shared by GICD and GICR.
# PIDR2.ArchRev [7:4] = 3 says "GICv3"; Linux checks exactly that field.
ID_REGISTER_VALUES: Final = {
    0xFFD0: 0x44,  # PIDR4
    0xFFD4: 0x00,  # PIDR5
    0xFFD8: 0x00,  # PIDR6
    0xFFDC: 0x00,  # PIDR7
    0xFFE0: 0x92,  # PIDR0
    0xFFE4: 0xB4,  # PIDR1
    0xFFE8: 0x3B,  # PIDR2: ArchRev 3 (GICv3), JEDEC used
    0xFFEC: 0x00,  # PIDR3
    0xFFF0: 0x0D,  # CIDR0
    0xFFF4: 0xF0,  # CIDR1
    0xFFF8: 0x05,  # CIDR2
    0xFFFC: 0xB1,  # CIDR3
}

#: Implementer 0x43B (Arm's JEP106 code, as KVM's and QEMU's models use), product 'L'.
IIDR_VALUE: Final = (0x4C << 24) | (0 << 16) | (1 << 12) | 0x43B


class GICD_CTLR_S:
    """GICD_CTLR as a Secure access sees it with two Security states (GICD_CTLR.DS = 0)."""

    EnableGrp0 = Field(0)
    EnableGrp1NS = Field(1)
    EnableGrp1S = Field(2)
    ARE_S = Field(4, access=RES1, doc="affinity routing, Secure state (RAO/WI)")
    ARE_NS = Field(5, access=RES1, doc="affinity routing, Non-secure state (RAO/WI)")
    DS = Field(6, access=RAZ_WI, doc="0: two Security states (not programmable here)")
    RWP = Field(31, access=RO)


class GICD_CTLR_NS:
    """GICD_CTLR as a Non-secure access sees it with two Security states (ARE_NS = 1)."""

    EnableGrp1A = Field(1, doc="alias of the Secure view's EnableGrp1NS")
    ARE_NS = Field(4, access=RES1, doc="alias of the Secure view's ARE_NS")
    RWP = Field(31, access=RO)


class GICD:
    """Distributor frame (64 KiB).  GICD_CTLR's fields are its view with one Security state
    (DS = 1); with two, the Secure and Non-secure views are :data:`GICD_CTLR_S` and
    :data:`GICD_CTLR_NS`."""

    CTLR = Reg("GICD_CTLR", 0x0000, fields={
        "EnableGrp0": Field(0),
        "EnableGrp1": Field(1),
        "ARE": Field(4, access=RES1, doc="affinity routing is always on (RAO/WI)"),
        "DS": Field(6, access=RES1, doc="one Security state (RAO/WI); 0 with two"),
        "E1NWF": Field(7, access=RAZ_WI),
        "RWP": Field(31, access=RO, doc="register write pending"),
    }, doc="Distributor control")
    TYPER = Reg("GICD_TYPER", 0x0004, access=RO, fields={
        "ITLinesNumber": Field(0, 5, RO, "32 * (N + 1) INTIDs below 1020"),
        "CPUNumber": Field(5, 3, RO),
        "ESPI": Field(8, access=RO),
        "NMI": Field(9, access=RO),
        "SecurityExtn": Field(10, access=RO),
        "num_LPIs": Field(11, 5, RO, "0: LPI count given by IDbits"),
        "MBIS": Field(16, access=RO, doc="message-based SPIs (SETSPI/CLRSPI)"),
        "LPIS": Field(17, access=RO, doc="LPIs supported"),
        "DVIS": Field(18, access=RO),
        "IDbits": Field(19, 5, RO, "INTID bits - 1"),
        "A3V": Field(24, access=RO),
        "No1N": Field(25, access=RO),
        "RSS": Field(26, access=RO),
        "ESPI_range": Field(27, 5, RO),
    }, doc="Interrupt controller type")
    IIDR = Reg("GICD_IIDR", 0x0008, access=RO, fields={
        "Implementer": Field(0, 12, RO),
        "Revision": Field(12, 4, RO),
        "Variant": Field(16, 4, RO),
        "ProductID": Field(24, 8, RO),
    })
    TYPER2 = Reg("GICD_TYPER2", 0x000C, access=RO)
    STATUSR = Reg("GICD_STATUSR", 0x0010, access=RAZ_WI, doc="error reporting not implemented")
    SETSPI_NSR = Reg("GICD_SETSPI_NSR", 0x0040, access=WO, feature="mbis",
                     fields={"INTID": Field(0, 13)}, doc="MBI doorbell: make an SPI pending")
    CLRSPI_NSR = Reg("GICD_CLRSPI_NSR", 0x0048, access=WO, feature="mbis",
                     fields={"INTID": Field(0, 13)}, doc="MBI: clear a pending SPI")
    SETSPI_SR = Reg("GICD_SETSPI_SR", 0x0050, feature="mbis", fields={"INTID": Field(0, 13)},
                    doc="Secure MBI doorbell: Secure writes only; WI with one Security "
                        "state and to Non-secure writes; reads as zero")
    CLRSPI_SR = Reg("GICD_CLRSPI_SR", 0x0058, feature="mbis", fields={"INTID": Field(0, 13)},
                    doc="Secure MBI clear (as GICD_SETSPI_SR)")
    IGROUPR = Reg("GICD_IGROUPR", 0x0080, count=32, doc="group: 0 = Group 0, 1 = Group 1")
    ISENABLER = Reg("GICD_ISENABLER", 0x0100, access=W1S, count=32)
    ICENABLER = Reg("GICD_ICENABLER", 0x0180, access=W1C, count=32)
    ISPENDR = Reg("GICD_ISPENDR", 0x0200, access=W1S, count=32)
    ICPENDR = Reg("GICD_ICPENDR", 0x0280, access=W1C, count=32)
    ISACTIVER = Reg("GICD_ISACTIVER", 0x0300, access=W1S, count=32)
    ICACTIVER = Reg("GICD_ICACTIVER", 0x0380, access=W1C, count=32)
    IPRIORITYR = Reg("GICD_IPRIORITYR", 0x0400, count=255, byte_access=True)
    ITARGETSR = Reg("GICD_ITARGETSR", 0x0800, access=RAZ_WI, count=255, byte_access=True,
                    doc="legacy targets: RAZ/WI with affinity routing")
    ICFGR = Reg("GICD_ICFGR", 0x0C00, count=64, doc="bit 2n+1: 1 edge, 0 level")
    IGRPMODR = Reg("GICD_IGRPMODR", 0x0D00, count=32,
                   doc="group modifier (with IGROUPR 0: 0 Group 0, 1 Secure Group 1); "
                       "Secure only, RAZ/WI with one Security state")
    NSACR = Reg("GICD_NSACR", 0x0E00, count=64,
                doc="Non-secure access to a Secure SPI, 2 bits each; Secure only, RAZ/WI "
                    "with one Security state")
    SGIR = Reg("GICD_SGIR", 0x0F00, access=RAZ_WI, doc="legacy SGIs: RAZ/WI with ARE")
    CPENDSGIR = Reg("GICD_CPENDSGIR", 0x0F10, access=RAZ_WI, count=4, byte_access=True)
    SPENDSGIR = Reg("GICD_SPENDSGIR", 0x0F20, access=RAZ_WI, count=4, byte_access=True)
    IROUTER = Reg("GICD_IROUTER", 0x6000, width=64, count=1020, fields={
        "Aff0": Field(0, 8),
        "Aff1": Field(8, 8),
        "Aff2": Field(16, 8),
        "Interrupt_Routing_Mode": Field(31, doc="1: any participating PE (1 of N)"),
        "Aff3": Field(32, 8),
    }, doc="SPI routing (element n routes INTID n; n < 32 reserved)")
    IDREGS = Reg("GICD_IDREGS", 0xFFD0, access=RO, count=12,
                 doc="PIDR4-7, PIDR0-3, CIDR0-3")


class GICR:
    """Redistributor RD_base frame (64 KiB).  SGI_base = RD_base + 0x10000."""

    CTLR = Reg("GICR_CTLR", 0x0000, fields={
        "EnableLPIs": Field(0, doc="LPI support enabled"),
        "CES": Field(1, access=RO, doc="EnableLPIs can be cleared once set"),
        "IR": Field(2, access=RO, doc="INVLPIR/INVALLR/SYNCR implemented"),
        "RWP": Field(3, access=RO, doc="a clear of EnableLPIs is in progress"),
        "DPG0": Field(24, access=RAZ_WI),
        "DPG1NS": Field(25, access=RAZ_WI),
        "DPG1S": Field(26, access=RAZ_WI),
        "UWP": Field(31, access=RO),
    }, doc="Redistributor control")
    IIDR = Reg("GICR_IIDR", 0x0004, access=RO)
    TYPER = Reg("GICR_TYPER", 0x0008, width=64, access=RO, fields={
        "PLPIS": Field(0, access=RO, doc="physical LPIs supported"),
        "VLPIS": Field(1, access=RO),
        "Dirty": Field(2, access=RO),
        "DirectLPI": Field(3, access=RO, doc="SETLPIR/CLRLPIR/INVLPIR/INVALLR/SYNCR provided"),
        "Last": Field(4, access=RO, doc="last RD of a contiguous region"),
        "DPGS": Field(5, access=RO),
        "MPAM": Field(6, access=RO),
        "RVPEID": Field(7, access=RO),
        "Processor_Number": Field(8, 16, RO),
        "CommonLPIAff": Field(24, 2, RO, "0: all RDs share one LPI configuration table"),
        "VSGI": Field(26, access=RO),
        "PPInum": Field(27, 5, RO),
        "Affinity_Value": Field(32, 32, RO, "Aff3.Aff2.Aff1.Aff0 of the PE"),
    }, doc="Redistributor type")
    STATUSR = Reg("GICR_STATUSR", 0x0010, access=RAZ_WI, doc="error reporting not implemented")
    WAKER = Reg("GICR_WAKER", 0x0014, fields={
        "ProcessorSleep": Field(1, doc="1: the PE is asleep, interrupts not forwarded"),
        "ChildrenAsleep": Field(2, access=RO, doc="1: the interface to the PE is quiescent"),
    })
    SETLPIR = Reg("GICR_SETLPIR", 0x0040, width=64, access=WO, feature="direct_lpi",
                  fields={"pINTID": Field(0, 32)}, doc="make an LPI pending on this RD")
    CLRLPIR = Reg("GICR_CLRLPIR", 0x0048, width=64, access=WO, feature="direct_lpi",
                  fields={"pINTID": Field(0, 32)}, doc="clear an LPI's pending state")
    PROPBASER = Reg("GICR_PROPBASER", 0x0070, width=64, feature="plpis", fields={
        "IDbits": Field(0, 5, doc="LPI INTID bits - 1"),
        "InnerCache": Field(7, 3),
        "Shareability": Field(10, 2),
        "Physical_Address": Field(12, 40, doc="bits [51:12] of the configuration table"),
        "OuterCache": Field(56, 3),
    }, doc="LPI configuration table base")
    PENDBASER = Reg("GICR_PENDBASER", 0x0078, width=64, feature="plpis", fields={
        "InnerCache": Field(7, 3),
        "Shareability": Field(10, 2),
        "Physical_Address": Field(16, 36, doc="bits [51:16] of the pending table"),
        "OuterCache": Field(56, 3),
        "PTZ": Field(62, access=WO, doc="pending table is zero (write-only, reads 0)"),
    }, doc="LPI pending table base")
    INVLPIR = Reg("GICR_INVLPIR", 0x00A0, width=64, access=WO, feature="direct_lpi",
                  fields={"INTID": Field(0, 32)}, doc="reload one LPI's configuration")
    INVALLR = Reg("GICR_INVALLR", 0x00B0, width=64, access=WO, feature="direct_lpi",
                  doc="reload every cached LPI configuration")
    SYNCR = Reg("GICR_SYNCR", 0x00C0, access=RO, feature="direct_lpi",
                fields={"Busy": Field(0, access=RO)}, doc="completion of CLRLPIR/INV*")
    IDREGS = Reg("GICR_IDREGS", 0xFFD0, access=RO, count=12)


class GICR_SGI:
    """Redistributor SGI_base frame: SGIs (0-15) and PPIs (16-31) of one PE."""

    IGROUPR0 = Reg("GICR_IGROUPR0", 0x0080)
    ISENABLER0 = Reg("GICR_ISENABLER0", 0x0100, access=W1S)
    ICENABLER0 = Reg("GICR_ICENABLER0", 0x0180, access=W1C)
    ISPENDR0 = Reg("GICR_ISPENDR0", 0x0200, access=W1S)
    ICPENDR0 = Reg("GICR_ICPENDR0", 0x0280, access=W1C)
    ISACTIVER0 = Reg("GICR_ISACTIVER0", 0x0300, access=W1S)
    ICACTIVER0 = Reg("GICR_ICACTIVER0", 0x0380, access=W1C)
    IPRIORITYR = Reg("GICR_IPRIORITYR", 0x0400, count=8, byte_access=True)
    ICFGR0 = Reg("GICR_ICFGR0", 0x0C00, access=RO, doc="SGIs are always edge-triggered")
    ICFGR1 = Reg("GICR_ICFGR1", 0x0C04, doc="PPI trigger (programmable in this model)")
    IGRPMODR0 = Reg("GICR_IGRPMODR0", 0x0D00,
                    doc="group modifier of SGIs/PPIs; Secure only, RAZ/WI with one "
                        "Security state")
    NSACR = Reg("GICR_NSACR", 0x0E00,
                doc="Non-secure generation of Secure SGIs, 2 bits per SGI; Secure only, "
                    "RAZ/WI with one Security state")



class GITS:
    """ITS control frame (ITS_base, 64 KiB); the translation frame is at ITS_base + 0x10000."""

    CTLR = Reg("GITS_CTLR", 0x0000, fields={
        "Enabled": Field(0, doc="the ITS translates MSIs and executes commands"),
        "ImDe": Field(1, access=RAZ_WI, doc="no implementation-defined event reporting"),
        "ITS_Number": Field(4, 4, RAZ_WI, "GICv4.1 only"),
        "UMSIirq": Field(8, access=RAZ_WI),
        "Quiescent": Field(31, access=RO, doc="1: disabled and every operation complete"),
    }, doc="ITS control")
    IIDR = Reg("GITS_IIDR", 0x0004, access=RO)
    TYPER = Reg("GITS_TYPER", 0x0008, width=64, access=RO, fields={
        "Physical": Field(0, access=RO, doc="physical LPIs supported"),
        "Virtual": Field(1, access=RO),
        "CCT": Field(2, access=RO, doc="cumulative collection tables"),
        "ITT_entry_size": Field(4, 4, RO, "bytes per ITT entry - 1"),
        "ID_bits": Field(8, 5, RO, "EventID bits - 1"),
        "Devbits": Field(13, 5, RO, "DeviceID bits - 1"),
        "SEIS": Field(18, access=RO, doc="command errors reported as SErrors (0 here)"),
        "PTA": Field(19, access=RO, doc="1: collection targets are RD physical addresses"),
        "HCC": Field(24, 8, RO, "collections held in the ITS, no memory"),
        "CIDbits": Field(32, 4, RO, "collection ID bits - 1 (when CIL is 1)"),
        "CIL": Field(36, access=RO, doc="0: collection IDs are 16 bits"),
    }, doc="ITS type")
    STATUSR = Reg("GITS_STATUSR", 0x0040, access=RAZ_WI, doc="error reporting not implemented")
    UMSIR = Reg("GITS_UMSIR", 0x0048, width=64, access=RAZ_WI)
    CBASER = Reg("GITS_CBASER", 0x0080, width=64, fields={
        "Size": Field(0, 8, doc="4 KiB pages of the command queue - 1"),
        "Shareability": Field(10, 2),
        "Physical_Address": Field(12, 40, doc="bits [51:12] of the command queue"),
        "OuterCache": Field(53, 3),
        "InnerCache": Field(59, 3),
        "Valid": Field(63),
    }, doc="command queue base")
    CWRITER = Reg("GITS_CWRITER", 0x0088, width=64, fields={
        "Retry": Field(0, doc="1: retry the command the queue stalled on"),
        "Offset": Field(5, 15, doc="bits [19:5] of the offset of the next command to write"),
    }, doc="command queue write pointer")
    CREADR = Reg("GITS_CREADR", 0x0090, width=64, access=RO, fields={
        "Stalled": Field(0, access=RO, doc="1: the queue stopped at a command error"),
        "Offset": Field(5, 15, RO, "bits [19:5] of the offset of the next command to execute"),
    }, doc="command queue read pointer")
    BASER = Reg("GITS_BASER", 0x0100, width=64, count=8, fields={
        "Size": Field(0, 8, doc="pages - 1"),
        "Page_Size": Field(8, 2, doc="0b00 4 KiB, 0b01 16 KiB, 0b10 64 KiB"),
        "Shareability": Field(10, 2),
        "Physical_Address": Field(12, 36, doc="bits [47:12] of the table (64 KiB pages: [47:16],"
                                              " with [15:12] holding bits [51:48])"),
        "Entry_Size": Field(48, 5, RO, "bytes per entry - 1"),
        "OuterCache": Field(53, 3),
        "Type": Field(56, 3, RO, "1 devices, 4 collections, 0 unimplemented"),
        "InnerCache": Field(59, 3),
        "Indirect": Field(62, doc="two-level table (not implemented here: RAZ/WI)"),
        "Valid": Field(63),
    }, doc="ITS table descriptors")
    IDREGS = Reg("GITS_IDREGS", 0xFFD0, access=RO, count=12)


class GITS_TRANSLATION:
    """ITS translation frame (ITS_base + 0x10000): the MSI doorbell."""

    TRANSLATER = Reg("GITS_TRANSLATER", 0x0040, access=WO, fields={
        "EventID": Field(0, 32)}, doc="an MSI: EventID written, DeviceID from the requester")


class V2M:
    """A GICv2m MSI frame (4 KiB architected; the model decodes its whole 64 KiB frame)."""

    MSI_TYPER = Reg("MSI_TYPER", 0x0008, access=RO, fields={
        "Number": Field(0, 10, RO, "SPIs this frame can make pending"),
        "Base": Field(16, 10, RO, "first SPI INTID"),
    }, doc="the frame's SPI block")
    MSI_SETSPI_NS = Reg("MSI_SETSPI_NS", 0x0040, access=WO, fields={
        "SPI": Field(0, 10)}, doc="an MSI: the SPI INTID written becomes pending (edge)")
    MSI_IIDR = Reg("MSI_IIDR", 0x0FCC, access=RO)


class HV:
    """The model's hypervisor call frame (Hyper-V guests: a stand-in for HVC and a VMBus
    channel).  The guest writes a message into its own RAM, its address into
    ``HV_MSG_GPA`` and 1 into ``HV_SIGNAL``; the host handles it before the write
    completes (a hypercall returns when it is done) and writes the reply into the
    message.  Layout of a message: :data:`HV_MSG_WORDS`."""

    MSG_GPA = Reg("HV_MSG_GPA", 0x0000, width=64, doc="guest physical address of the message")
    SIGNAL = Reg("HV_SIGNAL", 0x0008, access=WO, doc="1: the host handles the message")


class HV_MSI:
    """The host's MSI doorbell: where a vPCI function's real MSIs go.  Host physical, not
    in the guest's address space: only bus masters reach it."""

    DOORBELL = Reg("HV_MSI_DOORBELL", 0x0040, access=WO, fields={"Data": Field(0, 32)},
                   doc="an MSI: the data names an interrupt the host granted the writer")


#: Where the model's hypervisor frames are (QEMU virt's platform-bus window, unused here).
HV_HYPERCALL_BASE: Final = 0x0C00_0000
HV_MSI_BASE: Final = 0x0C01_0000
#: The vPCI messages (pci-hyperv's PCI_CREATE_INTERRUPT_MESSAGE2/3, PCI_DELETE_INTERRUPT_MESSAGE).
HV_PCI_CREATE_INTERRUPT: Final = 1
HV_PCI_DELETE_INTERRUPT: Final = 2
HV_PCI_BUS_D0ENTRY: Final = 3
"""The guest's vPCI driver starts using the bus (EPROTO if a previous kernel left it in D0)."""
HV_PCI_BUS_D0EXIT: Final = 4
"""The bus leaves D0: the host deletes every interrupt routed on it."""
#: A message: little-endian 32-bit words, in this order.  ``wslot`` is the function's
#: requester ID; ``vector`` the guest SPI (DELETE: the data the host gave); ``index`` the
#: MSI-X entry (0 for MSI); the host writes ``status`` (0, else an errno) and the message
#: the device will send (``address_lo``, ``address_hi``, ``data``).
HV_MSG_WORDS: Final = ("type", "wslot", "vector", "vector_count", "cpu", "index", "status",
                "address_lo", "address_hi", "data")
HV_MSG_SIZE: Final = 4 * len(HV_MSG_WORDS)

_INTID: Final = {"INTID": Field(0, 24)}
_INTID_RO: Final = {"INTID": Field(0, 24, RO)}


class ICC:
    """CPU interface system registers (AArch64 names), accessed by name."""

    IAR0 = Reg("ICC_IAR0_EL1", -1, access=RO, fields=_INTID_RO,
               doc="acknowledge the HPPI (Group 0)")
    IAR1 = Reg("ICC_IAR1_EL1", -1, access=RO, fields=_INTID_RO,
               doc="acknowledge the HPPI (Group 1)")
    EOIR0 = Reg("ICC_EOIR0_EL1", -1, access=WO, fields=_INTID)
    EOIR1 = Reg("ICC_EOIR1_EL1", -1, access=WO, fields=_INTID,
                doc="priority drop (+ deactivate if EOImode 0)")
    HPPIR0 = Reg("ICC_HPPIR0_EL1", -1, access=RO, fields=_INTID_RO)
    HPPIR1 = Reg("ICC_HPPIR1_EL1", -1, access=RO, fields=_INTID_RO,
                 doc="highest priority pending, no side effect")
    DIR = Reg("ICC_DIR_EL1", -1, access=WO, fields=_INTID, doc="deactivate (EOImode 1)")
    PMR = Reg("ICC_PMR_EL1", -1, fields={"Priority": Field(0, 8)})
    RPR = Reg("ICC_RPR_EL1", -1, access=RO, fields={"Priority": Field(0, 8, RO)})
    BPR0 = Reg("ICC_BPR0_EL1", -1, fields={"BinaryPoint": Field(0, 3)})
    BPR1 = Reg("ICC_BPR1_EL1", -1, fields={"BinaryPoint": Field(0, 3)})
    CTLR = Reg("ICC_CTLR_EL1", -1, fields={
        "CBPR": Field(0, doc="BPR0 also controls Group 1 preemption"),
        "EOImode": Field(1, doc="1: EOIR only drops priority; DIR deactivates"),
        "PMHE": Field(6, access=RAZ_WI),
        "PRIbits": Field(8, 3, RO, "priority bits - 1"),
        "IDbits": Field(11, 3, RO, "0: 16-bit INTIDs, 1: 24-bit"),
        "SEIS": Field(14, access=RO),
        "A3V": Field(15, access=RO),
        "RSS": Field(18, access=RO),
        "ExtRange": Field(19, access=RO),
    })
    IGRPEN0 = Reg("ICC_IGRPEN0_EL1", -1, fields={"Enable": Field(0)})
    IGRPEN1 = Reg("ICC_IGRPEN1_EL1", -1, fields={"Enable": Field(0)})
    SRE = Reg("ICC_SRE_EL1", -1, fields={
        "SRE": Field(0, access=RES1, doc="system register interface (RAO/WI)"),
        "DFB": Field(1, access=RES1),
        "DIB": Field(2, access=RES1),
    })
    SGI1R = Reg("ICC_SGI1R_EL1", -1, width=64, access=WO, fields={
        "TargetList": Field(0, 16),
        "Aff1": Field(16, 8),
        "INTID": Field(24, 4),
        "Aff2": Field(32, 8),
        "IRM": Field(40, doc="1: every PE but the sender"),
        "RS": Field(44, 4),
        "Aff3": Field(48, 8),
    })
    SGI0R = Reg("ICC_SGI0R_EL1", -1, width=64, access=WO,
                doc="Group 0 SGIs (fields as ICC_SGI1R_EL1)")
    ASGI1R = Reg("ICC_ASGI1R_EL1", -1, width=64, access=WO,
                 doc="Group 1 SGIs of the other Security state (fields as ICC_SGI1R_EL1); "
                     "with one Security state (GICD_CTLR.DS = 1), Group 0 SGIs")
    SRE_EL3 = Reg("ICC_SRE_EL3", -1, access=RO,
                  doc="EL3 only (two Security states): SRE, DFB, DIB, Enable all RAO/WI")
    CTLR_EL3 = Reg("ICC_CTLR_EL3", -1, fields={
        "CBPR_EL1S": Field(0), "CBPR_EL1NS": Field(1), "EOImode_EL3": Field(2),
        "EOImode_EL1S": Field(3), "EOImode_EL1NS": Field(4), "RM": Field(5, access=RAZ_WI),
        "PMHE": Field(6, access=RAZ_WI), "PRIbits": Field(8, 3, RO), "IDbits": Field(11, 3, RO),
        "A3V": Field(15, access=RO), "nDS": Field(17, access=RO),
    }, doc="EL3 only (two Security states): the EL1 banks' CBPR and EOImode, and EL3's")
    IGRPEN1_EL3 = Reg("ICC_IGRPEN1_EL3", -1, fields={
        "EnableGrp1NS": Field(0), "EnableGrp1S": Field(1),
    }, doc="EL3 only (two Security states): both banks of ICC_IGRPEN1_EL1")
    AP0R = Reg("ICC_AP0R", -1, count=4,
               doc="Group 0 active priorities (ICC_AP0R<n>_EL1; n < 1, 2 or 4 by PRIbits)")
    AP1R = Reg("ICC_AP1R", -1, count=4,
               doc="Group 1 active priorities (ICC_AP1R<n>_EL1; n < 1, 2 or 4 by PRIbits)")


# ---------------------------------------------------------------------------
# Constants of the INTID space and of the LPI tables.

SGI_BASE_OFFSET: Final = 0x10000
"""SGI_base frame of a redistributor, relative to its RD_base."""
ITS_TRANSLATION_OFFSET: Final = 0x10000
"""An ITS's translation frame (GITS_TRANSLATER), relative to its control frame."""
ITS_SIZE: Final = 0x20000
"""An ITS takes two 64 KiB frames (control, translation)."""
FRAME_SIZE: Final = 0x10000
GICR_STRIDE: Final = 0x20000
"""Two 64 KiB frames per GICv3 redistributor (RD_base, SGI_base)."""

INTID_SPURIOUS: Final = 1023
SPECIAL_INTIDS: Final = range(1020, 1024)
FIRST_SPI: Final = 32
MAX_SPI: Final = 1019
LPI_BASE: Final = 8192
PENDING_TABLE_RESERVED_BYTES: Final = 1024
"""The first 1 KiB of a pending table (INTIDs 0..8191) is IMPLEMENTATION DEFINED."""

LPI_CFG_ENABLE: Final = 0x01
LPI_CFG_RES1: Final = 0x02
"""Bit 1 of a configuration byte is RES1 (Linux names it LPI_PROP_GROUP1)."""
LPI_CFG_PRIORITY: Final = 0xFC

#: BASER cacheability and shareability encodings (PROPBASER/PENDBASER fields).
CACHE_nCnB, CACHE_nC, CACHE_RaWt, CACHE_RaWb, CACHE_WaWt, CACHE_WaWb, CACHE_RaWaWt, CACHE_RaWaWb = (
    range(8)
)
SHARE_NON, SHARE_INNER, SHARE_OUTER = range(3)

PROPBASER_WRITABLE: Final = (
    GICR.PROPBASER.IDbits.mask
    | GICR.PROPBASER.InnerCache.mask
    | GICR.PROPBASER.Shareability.mask
    | GICR.PROPBASER.Physical_Address.mask
    | GICR.PROPBASER.OuterCache.mask
)
PENDBASER_WRITABLE: Final = (
    GICR.PENDBASER.InnerCache.mask
    | GICR.PENDBASER.Shareability.mask
    | GICR.PENDBASER.Physical_Address.mask
    | GICR.PENDBASER.OuterCache.mask
)


def affinity_of(mpidr: int) -> int:
    """Pack an MPIDR's affinity as GICR_TYPER.Affinity_Value: Aff3.Aff2.Aff1.Aff0."""
    return (((mpidr >> 32) & 0xFF) << 24) | (mpidr & 0xFFFFFF)


def irouter_affinity(irouter: int) -> int:
    """The Aff3.Aff2.Aff1.Aff0 packing of a GICD_IROUTER value."""
    return (((irouter >> 32) & 0xFF) << 24) | (irouter & 0xFFFFFF)
