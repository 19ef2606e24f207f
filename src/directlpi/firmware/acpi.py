"""ACPI MADT ("APIC") and IORT tables for a GICv3: write and read.

The MADT layout is ACPI 6.3's (MADT revision 5, section 5.2.12), the newest that the
Debian acpica-tools (``iasl`` 20200925) decodes field by field:

* the 36-byte system description header, then ``Local Interrupt Controller
  Address`` (u32, 0 on Arm) and ``Flags`` (u32, 0), at offsets 36 and 40;
* a GICC (type 0x0B, 80 bytes) per CPU: CPU interface number, ACPI processor UID,
  flags (bit 0 Enabled), ..., ``GICR Base Address`` at +60, ``MPIDR`` at +68;
* one GICD (type 0x0C, 24 bytes): GIC ID, base address, system vector base (0),
  GIC version (3) at +20;
* a GICR (type 0x0E, 16 bytes) per redistributor region: discovery range base
  (u64 at +4) and length (u32 at +12);
* a GIC MSI Frame (type 0x0D, 24 bytes, section 5.2.12.16) per GICv2m frame:
  reserved (u16), GIC MSI Frame ID (u32 at +4), physical base (u64 at +8), flags
  (u32 at +16: bit 0 "SPI Count/Base Select" -- use the two fields below, not the
  frame's MSI_TYPER), SPI count (u16 at +20), SPI base (u16 at +22);
* a GIC ITS (type 0x0F, 20 bytes, section 5.2.12.18) per ITS: reserved (u16), GIC
  ITS ID (u32 at +4, what IORT ITS groups list), physical base (u64 at +8),
  reserved (u32).

The writer describes redistributors with GICR subtables (regions), as QEMU's
``virt`` does, and leaves GICC.GICR Base Address 0; the reader also accepts
the per-CPU form (every enabled GICC names its single RD, no GICR subtable), as
Linux's ``gic_acpi_count_gicr_regions`` does, and refuses a table that mixes
the two.  Nothing in the MADT can say "Direct LPI": that needs the proposed IORT
node (R7), so a board read from a MADT alone never offers it.  Nor can it say
whether the GIC implements LPIs (the OS reads GICD_TYPER.LPIS).

The ITS and GICv2m frames a MADT describes get firmware nodes named as Linux's ACPI
code names them (``irqchip@0x<base>``, ``irq_domain_alloc_fwnode``).  GICv2m frames
must be 64 KiB-aligned: the model maps each as a 64 KiB region (the architected frame
is 4 KiB).

Every problem is reported as a :class:`FirmwareError` naming the table, the
byte offset and the field.
"""

from __future__ import annotations

import errno
import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from directlpi.errors import DirectLPIError
from directlpi.kernel.fwdesc import (
    BoardDescription,
    GicDescription,
    ItsDescription,
    V2mFrameDescription,
)
from directlpi.kernel.irq.domain import Fwnode

HEADER_LEN = 36
MADT_FIXED_LEN = 44
MADT_REVISION = 5          # ACPI 6.3
GICC, GICD, GIC_MSI_FRAME, GICR, GIC_ITS = 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
GICC_LEN, GICD_LEN, GICR_LEN = 80, 24, 16
GIC_MSI_FRAME_LEN, GIC_ITS_LEN = 24, 20
GICC_ENABLED = 1 << 0
MSI_FRAME_SPI_SELECT = 1 << 0   # GIC MSI Frame flags: SPI Count/Base Select
GIC_VERSION_V3 = 3
GICR_FRAME_PAIR = 0x20000   # one RD without VLPIs: RD_base + SGI_base
ITS_REGION = 0x20000        # an ITS: ITS_base control frame + translation frame
V2M_REGION = 0x10000        # a GICv2m frame as the model maps it (architected: 4 KiB)
GICD_REGION = 0x10000
MAX_SPI = 1019

V2M_FIRST_SPI = 80
"""First SPI of the model's first GICv2m frame when firmware does not say (QEMU virt's
VIRT_GIC_V2M: SPI 48, INTID 80)."""
V2M_SPIS = 64
"""SPIs per GICv2m frame when firmware does not say (QEMU's NUM_GICV2M_SPIS)."""

_HEADER = struct.Struct("<4sIBB6s8sI4sI")
_GICC = struct.Struct("<BBHIIIIIQQQQIQQBBH")
_GICD = struct.Struct("<BBHIQIB3s")
_GICR = struct.Struct("<BBHQI")
_GIC_MSI_FRAME = struct.Struct("<BBHIQIHH")
_GIC_ITS = struct.Struct("<BBHIQI")
assert _HEADER.size == HEADER_LEN and _GICC.size == GICC_LEN
assert _GICD.size == GICD_LEN and _GICR.size == GICR_LEN
assert _GIC_MSI_FRAME.size == GIC_MSI_FRAME_LEN and _GIC_ITS.size == GIC_ITS_LEN

_NAMES = {GICC: "GICC", GICD: "GICD", GICR: "GICR", GIC_MSI_FRAME: "GIC MSI Frame",
          GIC_ITS: "GIC ITS"}
_LENGTHS = {GICC: GICC_LEN, GICD: GICD_LEN, GICR: GICR_LEN, GIC_MSI_FRAME: GIC_MSI_FRAME_LEN,
            GIC_ITS: GIC_ITS_LEN}


class FirmwareError(DirectLPIError):
    """A firmware description (ACPI table, devicetree) is malformed or inconsistent."""


@dataclass(frozen=True)
class TableHeader:
    """The 36-byte ACPI system description table header."""

    signature: bytes
    length: int
    revision: int
    checksum: int
    oem_id: bytes = b"DLPI  "
    oem_table_id: bytes = b"DIRECTLP"
    oem_revision: int = 1
    creator_id: bytes = b"DLPI"
    creator_revision: int = 1


def v2m_default_spis(k: int) -> tuple[int, int]:
    """(first SPI INTID, count) the model's silicon gives GICv2m frame ``k`` when firmware
    does not override MSI_TYPER: QEMU virt's layout, 64 SPIs per frame from INTID 80."""
    return V2M_FIRST_SPI + V2M_SPIS * k, V2M_SPIS


def v2m_hardware(frames: tuple[V2mFrameDescription, ...]) -> tuple[tuple[int, int, int], ...]:
    """The ``v2m_frames`` hardware option (base, first SPI, count) for ``frames``: the
    firmware's SPI block where it gives one, else :func:`v2m_default_spis` of its index."""
    out = []
    for k, f in enumerate(frames):
        if f.spi_base is not None and f.spi_count is not None:
            out.append((f.base, f.spi_base, f.spi_count))
        else:
            out.append((f.base, *v2m_default_spis(k)))
    return tuple(out)


def acpi_fwnode(base: int) -> Fwnode:
    """The firmware node Linux's ACPI code gives an ITS or GICv2m frame at ``base``."""
    return Fwnode(f"irqchip@{base:#018x}")


def checksum_fix(table: bytearray) -> None:
    """Set byte 9 so that every byte of ``table`` sums to 0 modulo 256."""
    table[9] = 0
    table[9] = (-sum(table)) & 0xFF


def _header(signature: bytes, revision: int, body_len: int) -> bytes:
    return _HEADER.pack(signature, HEADER_LEN + body_len, revision, 0, b"DLPI  ",
                        b"DIRECTLP", 1, b"DLPI", 1)


def rd_bases(board: BoardDescription) -> list[int]:
    """RD_base of logical CPU i's redistributor, as the GICR regions place them in order."""
    stride = board.gic.redist_stride or GICR_FRAME_PAIR
    bases = [base + j * stride for base, size in board.gic.redist_regions
             for j in range(size // stride)]
    if len(bases) < len(board.cpus):
        raise FirmwareError(f"MADT: the GICR regions hold {len(bases)} redistributors for "
                            f"{len(board.cpus)} CPUs", errno.EINVAL)
    return bases[:len(board.cpus)]


def build_madt(board: BoardDescription, gicr_in_gicc: bool = False) -> bytes:
    """The MADT describing ``board``'s CPUs (GICC), distributor (GICD) and redistributors:
    as GICR region subtables, or (``gicr_in_gicc``) as each GICC's GICR Base Address."""
    body = bytearray(struct.pack("<II", 0, 0))
    rds = rd_bases(board) if gicr_in_gicc else [0] * len(board.cpus)
    for uid, (mpidr, rd) in enumerate(zip(board.cpus, rds, strict=True)):
        body += _GICC.pack(GICC, GICC_LEN, 0, uid, uid, GICC_ENABLED, 0, 0, 0, 0, 0, 0, 0,
                           rd, mpidr, 0, 0, 0)
    body += _GICD.pack(GICD, GICD_LEN, 0, 0, board.gic.dist_base, 0, GIC_VERSION_V3,
                       b"\0\0\0")
    for base, size in () if gicr_in_gicc else board.gic.redist_regions:
        if size >= 1 << 32:
            raise FirmwareError(f"MADT: GICR region @{base:#x} is {size:#x} bytes; the GICR "
                                "Discovery Range Length field holds 32 bits", errno.ERANGE)
        body += _GICR.pack(GICR, GICR_LEN, 0, base, size)
    for frame in board.gic.v2m_frames:
        body += _msi_frame(frame)
    for its in board.gic.its:
        body += _GIC_ITS.pack(GIC_ITS, GIC_ITS_LEN, 0, its.translation_id, its.base, 0)
    table = bytearray(_header(b"APIC", MADT_REVISION, len(body)) + body)
    checksum_fix(table)
    return bytes(table)


def _msi_frame(frame: V2mFrameDescription) -> bytes:
    """A GIC MSI Frame subtable; firmware's SPI block, if any, with the Select flag."""
    if (frame.spi_base is None) != (frame.spi_count is None):
        raise FirmwareError(f"MADT: GICv2m frame @{frame.base:#x}: an SPI base without an SPI "
                            "count or the reverse; the MADT's SPI Count/Base Select flag "
                            "overrides both", errno.EINVAL)
    if frame.spi_base is None or frame.spi_count is None:
        return _GIC_MSI_FRAME.pack(GIC_MSI_FRAME, GIC_MSI_FRAME_LEN, 0, frame.frame_id,
                                   frame.base, 0, 0, 0)
    return _GIC_MSI_FRAME.pack(GIC_MSI_FRAME, GIC_MSI_FRAME_LEN, 0, frame.frame_id, frame.base,
                               MSI_FRAME_SPI_SELECT, frame.spi_count, frame.spi_base)


def parse_header(data: bytes, signature: bytes) -> TableHeader:
    """Check an ACPI table's header, length and checksum; raise FirmwareError naming the
    offset and field when any is wrong."""
    name = signature.decode("ascii", "replace")
    if len(data) < HEADER_LEN:
        raise FirmwareError(f"{name}: {len(data)} bytes, shorter than the {HEADER_LEN}-byte "
                            "table header")
    h = TableHeader(*_HEADER.unpack_from(data))
    if h.signature != signature:
        raise FirmwareError(f"{name}: offset 0x0 Signature: {h.signature!r}, expected "
                            f"{signature!r}")
    if h.length != len(data):
        raise FirmwareError(f"{name}: offset 0x4 Length: {h.length} but the table has "
                            f"{len(data)} bytes")
    if sum(data) & 0xFF:
        good = (h.checksum - sum(data)) & 0xFF
        raise FirmwareError(f"{name}: offset 0x9 Checksum: {h.checksum:#04x}, should be "
                            f"{good:#04x}")
    return h


@dataclass(frozen=True)
class Madt:
    """What a MADT says about a GICv3."""

    cpus: tuple[int, ...]
    """MPIDRs of the enabled GICCs, in table order (logical CPU i = entry i)."""
    dist_base: int
    redist_regions: tuple[tuple[int, int], ...]
    gicr_in_gicc: bool = False
    """The RDs are named one per CPU in the GICCs (GICR Base Address), not by GICR
    subtables (regions)."""
    its: tuple[ItsDescription, ...] = ()
    """The GIC ITS subtables, in table order (``translation_id`` = GIC ITS ID)."""
    v2m_frames: tuple[V2mFrameDescription, ...] = ()
    """The GIC MSI Frame subtables, in table order; ``spi_base``/``spi_count`` set only
    when the SPI Count/Base Select flag is."""

    def gic(self) -> GicDescription:
        """The GIC description a kernel boots from; a MADT never names Direct LPI."""
        return GicDescription(dist_base=self.dist_base, redist_regions=self.redist_regions,
                              its=self.its, v2m_frames=self.v2m_frames)


def parse_madt(data: bytes) -> Madt:
    """Read a MADT; raise FirmwareError naming the offset and field of the first problem."""
    parse_header(data, b"APIC")
    if len(data) < MADT_FIXED_LEN:
        raise FirmwareError(f"APIC: {len(data)} bytes, shorter than the {MADT_FIXED_LEN}-byte "
                            "MADT header")
    cpus: list[int] = []
    per_cpu_rds: list[int] = []
    gicds: list[tuple[int, int]] = []
    regions: list[tuple[int, int]] = []
    its: dict[int, tuple[int, ItsDescription]] = {}          # GIC ITS ID -> (offset, ITS)
    frames: dict[int, tuple[int, V2mFrameDescription]] = {}  # frame ID -> (offset, frame)
    off = MADT_FIXED_LEN
    while off < len(data):
        if off + 2 > len(data):
            raise FirmwareError(f"APIC: offset {off:#x}: subtable header runs past the end "
                                "of the table")
        kind, length = data[off], data[off + 1]
        want = _LENGTHS.get(kind)
        where = f"APIC: offset {off:#x} ({_NAMES.get(kind, f'type {kind:#04x}')})"
        if length < 2 or off + length > len(data):
            raise FirmwareError(f"{where} Length: {length} runs past the end of the table "
                                f"({len(data)} bytes)" if length >= 2 else
                                f"{where} Length: {length}, a subtable is at least 2 bytes")
        if want is not None and length < want:
            raise FirmwareError(f"{where} Length: {length}, expected {want}")
        if kind == GICC:
            f = _GICC.unpack_from(data, off)
            flags, gicr_base, mpidr = f[5], f[13], f[14]
            if flags & GICC_ENABLED:
                cpus.append(mpidr)
                per_cpu_rds.append(gicr_base)
        elif kind == GICD:
            f = _GICD.unpack_from(data, off)
            if f[6] not in (0, GIC_VERSION_V3, 4):
                raise FirmwareError(f"{where} GIC Version at +20: {f[6]}, this model is a "
                                    "GICv3")
            gicds.append((off, f[4]))
        elif kind == GICR:
            f = _GICR.unpack_from(data, off)
            if f[4] == 0:
                raise FirmwareError(f"{where} Discovery Range Length at +12: 0")
            regions.append((f[3], f[4]))
        elif kind == GIC_ITS:
            desc = _parse_its(data, off, where)
            _unique(its, desc.translation_id, off, where, "GIC ITS ID at +4")
            its[desc.translation_id] = (off, desc)
        elif kind == GIC_MSI_FRAME:
            frame = _parse_msi_frame(data, off, where)
            _unique(frames, frame.frame_id, off, where, "GIC MSI Frame ID at +4")
            frames[frame.frame_id] = (off, frame)
        off += length
    if not cpus:
        raise FirmwareError("APIC: no enabled GICC: the table describes no CPU")
    if len(gicds) != 1:
        raise FirmwareError(f"APIC: {len(gicds)} GICD subtables, expected exactly one")
    if regions and any(per_cpu_rds):
        raise FirmwareError("APIC: GICR subtables and GICC GICR Base Address both given; "
                            "use one or the other")
    in_gicc = not regions
    if not regions:
        if not all(per_cpu_rds):
            missing = [i for i, b in enumerate(per_cpu_rds) if not b]
            raise FirmwareError(f"APIC: no GICR subtable, and the GICC of CPU(s) {missing} "
                                "has no GICR Base Address")
        regions = [(b, GICR_FRAME_PAIR) for b in per_cpu_rds]
    _check_overlaps(regions)
    its_list = tuple(d for _o, d in sorted(its.values(), key=lambda x: x[0]))
    frame_list = tuple(d for _o, d in sorted(frames.values(), key=lambda x: x[0]))
    _check_block_overlaps(gicds[0][1], regions, its_list, frame_list)
    return Madt(tuple(cpus), gicds[0][1], tuple(regions), in_gicc, its_list, frame_list)


def _unique(seen: dict[int, tuple[int, Any]], key: int, off: int, where: str,
            field: str) -> None:
    if key in seen:
        raise FirmwareError(f"{where} {field}: {key} is also the ID of the subtable at offset "
                            f"{seen[key][0]:#x}")


def _parse_its(data: bytes, off: int, where: str) -> ItsDescription:
    _, _, _, its_id, base, _ = _GIC_ITS.unpack_from(data, off)
    if base % 0x10000:
        raise FirmwareError(f"{where} Physical Base Address at +8: {base:#x} is not 64 KiB-"
                            "aligned (ITS_base)")
    return ItsDescription(base, acpi_fwnode(base), translation_id=its_id)


def _parse_msi_frame(data: bytes, off: int, where: str) -> V2mFrameDescription:
    _, _, _, frame_id, base, flags, count, spi_base = _GIC_MSI_FRAME.unpack_from(data, off)
    if base % V2M_REGION:
        raise FirmwareError(f"{where} Physical Base Address at +8: {base:#x} is not 64 KiB-"
                            "aligned (the model maps each GICv2m frame as a 64 KiB region)")
    if flags & ~MSI_FRAME_SPI_SELECT:
        raise FirmwareError(f"{where} Flags at +16: {flags:#x}, reserved bits set")
    if not flags & MSI_FRAME_SPI_SELECT:
        return V2mFrameDescription(base, None, None, acpi_fwnode(base), frame_id)
    if count == 0 or spi_base < 32 or spi_base + count - 1 > MAX_SPI:
        raise FirmwareError(f"{where} SPI Count at +20 / SPI Base at +22: {count} SPIs from "
                            f"{spi_base} are not SPIs 32..{MAX_SPI} (the SPI Count/Base Select "
                            "flag is set)")
    return V2mFrameDescription(base, spi_base, count, acpi_fwnode(base), frame_id)


def _check_overlaps(regions: list[tuple[int, int]]) -> None:
    ordered = sorted(regions)
    for (a, alen), (b, _) in itertools.pairwise(ordered):
        if a + alen > b:
            raise FirmwareError(f"APIC: GICR regions @{a:#x} (+{alen:#x}) and @{b:#x} overlap")


def _check_block_overlaps(gicd: int, regions: list[tuple[int, int]],
                          its: tuple[ItsDescription, ...],
                          frames: tuple[V2mFrameDescription, ...]) -> None:
    """No two of the GIC's blocks (GICD, GICR regions, ITSes, GICv2m frames) overlap."""
    spans = [(gicd, GICD_REGION, "the GICD"),
             *((b, s, f"the GICR region @{b:#x}") for b, s in regions),
             *((i.base, ITS_REGION, f"GIC ITS {i.translation_id}") for i in its),
             *((f.base, V2M_REGION, f"GIC MSI Frame {f.frame_id} (64 KiB as the model maps "
                "it)") for f in frames)]
    ordered = sorted(spans)
    widest = ordered[0]
    for span in ordered[1:]:
        if span[0] < widest[0] + widest[1]:
            raise FirmwareError(f"APIC: {span[2]} @{span[0]:#x} overlaps {widest[2]} "
                                f"@{widest[0]:#x} (+{widest[1]:#x})")
        if span[0] + span[1] > widest[0] + widest[1]:
            widest = span


# -- IORT: ITS groups, and the proposed Direct LPI node ------------------------------------------
#
# IORT (Arm DEN 0049; table revision 0, as iasl 20200925 knows it) routes the
# requester IDs of root complexes and named components to ITS groups only.  An ITS
# group node (type 0) lists GIC ITS IDs of the MADT; a root complex ID mapping to it
# gives the DeviceID of its first requester ID (Output Base).  Its layout is the same
# in every issue of the specification (issue E.b renames the node header's Reserved
# field Identifier and numbers the node revision 1); the writer keeps revision 0
# throughout, matching the table's revision 0.  We PROPOSE one more node
# type, "GIC redistributor MSI target", to which an ID mapping can point: it says
# that the MSIs of those requester IDs are memory writes of an LPI INTID to the
# GICR_SETLPIR register of any redistributor the MADT describes (Direct LPI).
# It is NOT part of any IORT revision; its type number is taken from the top of
# the unused range so that it cannot be mistaken for a future standard node.

IORT_REVISION = 0
IORT_FIXED_LEN = 48
IORT_NODE_ITS_GROUP = 0x00
IORT_NODE_ROOT_COMPLEX = 0x02
IORT_NODE_DIRECT_LPI = 0x80          # PROPOSED, not standard
ITS_GROUP_NODE_LEN = 24              # one GIC ITS ID per group (Linux uses only the first)
ITS_GROUP_REVISION = 0
DIRECT_LPI_NODE_LEN = 24
DIRECT_LPI_FLAG = 1 << 0             # MSIs target GICR_SETLPIR of any RD
RC_NODE_LEN = 36                     # root complex node (with the address size limit)
ID_MAPPING_LEN = 20

_NODE = struct.Struct("<BHBIII")      # type, length, revision, reserved, #mappings, mapping ref
_MAPPING = struct.Struct("<IIIII")    # input base, ID count - 1, output base, output ref, flags
# coherent, alloc hints, reserved, mem flags, ATS, segment, memory address size limit, reserved
_RC_TAIL = struct.Struct("<IBHBIIB3s")
assert _NODE.size == 16 and _MAPPING.size == ID_MAPPING_LEN
assert 16 + _RC_TAIL.size == RC_NODE_LEN


@dataclass(frozen=True)
class DirectLpiRoute:
    """Requester IDs ``rid_base .. rid_base + count - 1`` of PCI segment ``segment`` signal
    their MSIs by Direct LPI."""

    segment: int
    rid_base: int
    count: int


@dataclass(frozen=True)
class ItsRoute:
    """Requester IDs ``rid_base .. rid_base + count - 1`` of PCI segment ``segment`` signal
    their MSIs to the ITS whose GIC ITS ID (MADT) is ``its_id``, as DeviceIDs
    ``output_base ..`` (an IORT root complex ID mapping to an ITS group)."""

    segment: int
    rid_base: int
    count: int
    its_id: int
    output_base: int = 0


@dataclass(frozen=True)
class Iort:
    """What an IORT says about MSIs: its Direct LPI and ITS routes, and the GIC ITS IDs of
    each ITS group node (in table order)."""

    direct_lpi: tuple[DirectLpiRoute, ...] = ()
    its: tuple[ItsRoute, ...] = ()
    its_groups: tuple[tuple[int, ...], ...] = ()


def direct_lpi_routes(board: BoardDescription) -> tuple[tuple[DirectLpiRoute, ...], list[str]]:
    """The IORT routes that say what ``board``'s PCI host bridges say about Direct LPI,
    and a line for every requester-ID range ACPI cannot say (MBI has no IORT form)."""
    routes: list[DirectLpiRoute] = []
    left_out: list[str] = []
    dlpi, mbi = board.gic.direct_lpi_fwnode, board.gic.fwnode
    for host in board.pci_hosts:
        for r in host.msi_routes():
            if r.parent is dlpi and board.gic.direct_lpi:
                routes.append(DirectLpiRoute(host.segment, r.rid_base, r.count))
            elif r.parent is mbi:
                left_out.append(f"segment {host.segment} RIDs {r.rid_base:#x}+{r.count:#x} use "
                                "MBI: ACPI has no MBI description, left out of the IORT")
    return tuple(routes), left_out


def its_routes(board: BoardDescription) -> tuple[tuple[ItsRoute, ...], list[str]]:
    """The IORT routes (root complex -> ITS group) of ``board``'s PCI host bridges'
    requester IDs that signal to an ITS, and a line for every range that signals to the
    GICv2m frames (IORT has no node for them: Linux's ACPI GICv2m code takes every PCI
    host's MSIs, ``pci_msi_register_fwnode_provider``)."""
    routes: list[ItsRoute] = []
    left_out: list[str] = []
    v2m = board.gic.v2m_frames[0].fwnode if board.gic.v2m_frames else None
    for host in board.pci_hosts:
        for r in host.msi_routes():
            its = board.gic.its_by_fwnode(r.parent)
            if its is not None:
                routes.append(ItsRoute(host.segment, r.rid_base, r.count, its.translation_id,
                                       r.msi_base))
            elif v2m is not None and r.parent is v2m:
                left_out.append(f"segment {host.segment} RIDs {r.rid_base:#x}+{r.count:#x} use "
                                "GICv2m: IORT has no GICv2m node; the MADT's GIC MSI Frame "
                                "describes it, left out of the IORT")
    return tuple(routes), left_out


def build_iort(routes: Sequence[DirectLpiRoute | ItsRoute], *,
               its_ids: Sequence[int] | None = None, direct_lpi_node: bool = True,
               segments: Sequence[int] = ()) -> bytes:
    """An IORT with the proposed Direct LPI node (unless ``direct_lpi_node`` is False), an
    ITS group node per GIC ITS ID in ``its_ids`` (default: those ``routes`` name, in order)
    and a root complex node per segment whose requester IDs ``routes`` map, and per segment
    of ``segments`` (with no ID mapping if no route names it).

    Raises FirmwareError (EINVAL) for a route to a node the table would not have."""
    ids = list(dict.fromkeys(r.its_id for r in routes if isinstance(r, ItsRoute))) \
        if its_ids is None else list(its_ids)
    nodes = bytearray()
    if direct_lpi_node:
        nodes += _NODE.pack(IORT_NODE_DIRECT_LPI, DIRECT_LPI_NODE_LEN, 0, 0, 0, 0)
        nodes += struct.pack("<II", DIRECT_LPI_FLAG, 0)
    groups: dict[int, int] = {}              # GIC ITS ID -> ITS group node offset
    for its_id in ids:
        groups[its_id] = IORT_FIXED_LEN + len(nodes)
        nodes += _NODE.pack(IORT_NODE_ITS_GROUP, ITS_GROUP_NODE_LEN, ITS_GROUP_REVISION, 0, 0,
                            0)
        nodes += struct.pack("<II", 1, its_id)
    per_segment: dict[int, list[DirectLpiRoute | ItsRoute]] = {s: [] for s in segments}
    for r in routes:
        per_segment.setdefault(r.segment, []).append(r)
    for segment, maps in per_segment.items():
        length = RC_NODE_LEN + ID_MAPPING_LEN * len(maps)
        nodes += _NODE.pack(IORT_NODE_ROOT_COMPLEX, length, 0, 0, len(maps),
                            RC_NODE_LEN if maps else 0)
        nodes += _RC_TAIL.pack(1, 0, 0, 0, 0, segment, 48, b"\0\0\0")
        for m in maps:
            nodes += _MAPPING.pack(m.rid_base, m.count - 1, *_mapping_target(m, groups,
                                                                           direct_lpi_node), 0)
    body = struct.pack("<III", len(groups) + len(per_segment) + int(direct_lpi_node),
                       IORT_FIXED_LEN, 0) + nodes
    table = bytearray(_header(b"IORT", IORT_REVISION, len(body)) + body)
    checksum_fix(table)
    return bytes(table)


def _mapping_target(m: DirectLpiRoute | ItsRoute, groups: dict[int, int],
                    direct_lpi_node: bool) -> tuple[int, int]:
    """(output base, output reference) of an ID mapping for route ``m``."""
    if isinstance(m, DirectLpiRoute):
        if not direct_lpi_node:
            raise FirmwareError(f"IORT: segment {m.segment} RIDs {m.rid_base:#x}+{m.count:#x} "
                                "route to Direct LPI, but the table has no Direct LPI node",
                                errno.EINVAL)
        return 0, IORT_FIXED_LEN
    if m.its_id not in groups:
        raise FirmwareError(f"IORT: segment {m.segment} RIDs {m.rid_base:#x}+{m.count:#x} "
                            f"route to GIC ITS {m.its_id}, which has no ITS group in the table",
                            errno.EINVAL)
    return m.output_base, groups[m.its_id]


def parse_iort(data: bytes) -> tuple[DirectLpiRoute, ...]:
    """The requester-ID ranges an IORT routes to a Direct LPI node (:func:`read_iort` has
    the ITS routes too); raise FirmwareError naming the offset and field of a problem."""
    return read_iort(data).direct_lpi


def read_iort(data: bytes) -> Iort:
    """Every route an IORT's root complex nodes give: to the proposed Direct LPI node, or
    to an ITS group (the group's first GIC ITS ID, as Linux's ``iort_dev_find_its_id``
    takes it).  Other node types (SMMU, PMCG, named components) are passed over.  Raise
    FirmwareError naming the offset and field of the first problem."""
    parse_header(data, b"IORT")
    if len(data) < IORT_FIXED_LEN:
        raise FirmwareError(f"IORT: {len(data)} bytes, shorter than the {IORT_FIXED_LEN}-byte "
                            "IORT header")
    count, first, _ = struct.unpack_from("<III", data, HEADER_LEN)
    nodes: dict[int, tuple[int, int]] = {}       # offset -> (type, length)
    off = first
    for i in range(count):
        if off < IORT_FIXED_LEN or off + _NODE.size > len(data):
            raise FirmwareError(f"IORT: node {i} at offset {off:#x} lies outside the table "
                                f"({len(data)} bytes)")
        kind, length, _, _, _, _ = _NODE.unpack_from(data, off)
        if length < _NODE.size or off + length > len(data):
            raise FirmwareError(f"IORT: offset {off:#x} (node {i}, type {kind:#04x}) Length: "
                                f"{length} does not fit the table")
        nodes[off] = (kind, length)
        off += length
    groups: dict[int, tuple[int, ...]] = {}
    for off, (kind, length) in nodes.items():
        if kind == IORT_NODE_DIRECT_LPI:
            _check_direct_lpi_node(data, off, length)
        elif kind == IORT_NODE_ITS_GROUP:
            groups[off] = _its_group(data, off, length)
    dlpi: list[DirectLpiRoute] = []
    its: list[ItsRoute] = []
    for off, (kind, length) in nodes.items():
        if kind == IORT_NODE_ROOT_COMPLEX:
            for route in _root_complex_routes(data, off, length, nodes, groups):
                if isinstance(route, ItsRoute):
                    its.append(route)
                else:
                    dlpi.append(route)
    return Iort(tuple(dlpi), tuple(its), tuple(groups.values()))


def _check_direct_lpi_node(data: bytes, off: int, length: int) -> None:
    where = f"IORT: offset {off:#x} (Direct LPI node)"
    if length < DIRECT_LPI_NODE_LEN:
        raise FirmwareError(f"{where} Length: {length}, expected {DIRECT_LPI_NODE_LEN}")
    (flags,) = struct.unpack_from("<I", data, off + 16)
    if not flags & DIRECT_LPI_FLAG:
        raise FirmwareError(f"{where} Flags at +16: {flags:#x}, bit 0 (Direct LPI) is clear")
    if flags & ~DIRECT_LPI_FLAG:
        raise FirmwareError(f"{where} Flags at +16: {flags:#x}, reserved bits set")


def _its_group(data: bytes, off: int, length: int) -> tuple[int, ...]:
    """The GIC ITS IDs an ITS group node lists."""
    where = f"IORT: offset {off:#x} (ITS group)"
    if length < _NODE.size + 4:
        raise FirmwareError(f"{where} Length: {length}, expected at least {_NODE.size + 4}")
    (n,) = struct.unpack_from("<I", data, off + 16)
    if n == 0 or _NODE.size + 4 + 4 * n > length:
        raise FirmwareError(f"{where} Number of ITSs at +16: {n}: "
                            + ("an ITS group lists at least one ITS" if n == 0 else
                               f"{n} identifiers do not fit the {length}-byte node"))
    return struct.unpack_from(f"<{n}I", data, off + 20)


def _root_complex_routes(data: bytes, off: int, length: int, nodes: dict[int, tuple[int, int]],
                         groups: dict[int, tuple[int, ...]]) -> list[DirectLpiRoute | ItsRoute]:
    where = f"IORT: offset {off:#x} (root complex)"
    if length < RC_NODE_LEN:
        raise FirmwareError(f"{where} Length: {length}, expected at least {RC_NODE_LEN}")
    _, _, _, _, nmaps, ref = _NODE.unpack_from(data, off)
    segment = _RC_TAIL.unpack_from(data, off + 16)[5]
    if ref + nmaps * ID_MAPPING_LEN > length or (nmaps and ref < RC_NODE_LEN):
        raise FirmwareError(f"{where} ID mappings: {nmaps} at +{ref:#x} do not fit the "
                            f"{length}-byte node")
    routes: list[DirectLpiRoute | ItsRoute] = []
    for j in range(nmaps):
        m_off = off + ref + j * ID_MAPPING_LEN
        in_base, span, out_base, out_ref, _ = _MAPPING.unpack_from(data, m_off)
        target = nodes.get(out_ref)
        if target is None:
            raise FirmwareError(f"{where} ID mapping {j} Output Reference: {out_ref:#x} is "
                                "not the offset of a node")
        if target[0] == IORT_NODE_ITS_GROUP:
            if out_base + span >= 1 << 32:
                raise FirmwareError(f"{where} ID mapping {j} Output Base: {out_base:#x} + "
                                    f"{span:#x} IDs run past 32-bit DeviceIDs")
            routes.append(ItsRoute(segment, in_base, span + 1, groups[out_ref][0], out_base))
        elif target[0] == IORT_NODE_DIRECT_LPI:
            routes.append(DirectLpiRoute(segment, in_base, span + 1))
    return routes


# -- MCFG: where each PCI segment's ECAM is (PCI Firmware Specification 3.x, 4.1.2) ------------

MCFG_FIXED_LEN = 44
MCFG_REVISION = 1
_MCFG_ENTRY = struct.Struct("<QHBB4x")
SZ_1M = 0x10_0000


@dataclass(frozen=True)
class McfgEntry:
    """One MCFG allocation: ``base`` is the ECAM address of *bus 0* of ``segment`` (bus b
    is at ``base + (b << 20)``), buses ``bus_start .. bus_end`` decoded."""

    base: int
    segment: int
    bus_start: int
    bus_end: int

    @property
    def window(self) -> tuple[int, int]:
        """The ECAM window these buses occupy: (address of bus_start, size)."""
        return self.base + (self.bus_start << 20), (self.bus_end - self.bus_start + 1) << 20


def build_mcfg(board: BoardDescription) -> bytes:
    """The MCFG for ``board``'s PCI host bridges (one allocation each)."""
    body = bytearray(8)                       # reserved
    for h in board.pci_hosts:
        body += _MCFG_ENTRY.pack(h.ecam_base - (h.bus_start << 20), h.segment, h.bus_start,
                                 h.bus_end)
    table = bytearray(_header(b"MCFG", MCFG_REVISION, len(body)) + body)
    checksum_fix(table)
    return bytes(table)


def parse_mcfg(data: bytes) -> tuple[McfgEntry, ...]:
    """The allocations of an MCFG; FirmwareError naming the offset and field of the
    first problem (a length that is not whole entries, a bus range that is empty or past
    255, a window not 1 MiB aligned or past 52 bits, two allocations of one segment whose
    buses overlap)."""
    parse_header(data, b"MCFG")
    if len(data) < MCFG_FIXED_LEN or (len(data) - MCFG_FIXED_LEN) % _MCFG_ENTRY.size:
        raise FirmwareError(f"MCFG: offset 0x4 Length: {len(data)} bytes is not the "
                            f"{MCFG_FIXED_LEN}-byte fixed part plus whole "
                            f"{_MCFG_ENTRY.size}-byte allocations")
    out: list[McfgEntry] = []
    for off in range(MCFG_FIXED_LEN, len(data), _MCFG_ENTRY.size):
        e = McfgEntry(*_MCFG_ENTRY.unpack_from(data, off))
        where = f"MCFG: allocation at offset {off:#x}"
        if e.bus_start > e.bus_end:
            raise FirmwareError(f"{where}: Start Bus {e.bus_start} > End Bus {e.bus_end}")
        start, size = e.window
        if e.base % SZ_1M or start + size > 1 << 52:
            raise FirmwareError(f"{where}: Base Address {e.base:#x} is not a 1 MiB-aligned "
                                "ECAM address within 52 bits")
        clash = next((o for o in out if o.segment == e.segment
                      and e.bus_start <= o.bus_end and o.bus_start <= e.bus_end), None)
        if clash is not None:
            raise FirmwareError(f"{where}: segment {e.segment} buses {e.bus_start}.."
                                f"{e.bus_end} overlap another allocation's {clash.bus_start}.."
                                f"{clash.bus_end}")
        out.append(e)
    return tuple(out)
