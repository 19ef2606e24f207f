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


# -- IORT: ITS groups, named components, and the proposed GIC MSI target node -----------------
#
# IORT (Arm DEN 0049) routes the requester IDs of root complexes, and the MSIs of named
# components, to ITS groups only.  We write table revision 0 with the node revisions
# whose fields we fill -- the layout edk2's DynamicTablesPkg writes below table revision
# 5: ITS group revision 0, named component revision 2, root complex revision 1, the
# revision that defines Memory Address Size Limit (Linux's rc_dma_get_range ignores the
# field below it).  At table revision 0 the node header's word at +4 is Reserved (0);
# from table revision 3 (issue E.b) it is the node's Identifier, unique in the table,
# and the reader refuses two nodes that share one.  Revision 0 is also the newest that
# the Debian iasl (20200925) decodes field by field.
#
# We PROPOSE one more node type, the "GIC MSI target" (docs/firmware.md has the
# normative wording), to which an ID mapping can point.  It is NOT part of any IORT
# revision; its type number is taken from the top of the unused range.  Revision 1 of
# the node says one of two things about the MSIs mapped to it:
#   Direct LPI -- a 32-bit write of an LPI INTID to GICR_SETLPIR of any redistributor
#                 the MADT describes;
#   MBI        -- a 32-bit write of an SPI INTID in [First SPI, First SPI + Number of
#                 SPIs) to GICD_SETSPI_NSR (ACPI has no other MBI description).
# A mapping to it has Output Base 0: neither takes a DeviceID.

IORT_REVISION = 0
IORT_IDENTIFIER_REVISION = 3         # table revision from which +4 is the node Identifier
IORT_FIXED_LEN = 48
IORT_NODE_ITS_GROUP = 0x00
IORT_NODE_NAMED_COMPONENT = 0x01
IORT_NODE_ROOT_COMPLEX = 0x02
IORT_NODE_SMMU_V1V2 = 0x03
IORT_NODE_SMMU_V3 = 0x04
IORT_NODE_GIC_MSI_TARGET = 0x80      # PROPOSED, not standard
IORT_NODE_DIRECT_LPI = IORT_NODE_GIC_MSI_TARGET
ITS_GROUP_NODE_LEN = 24              # one GIC ITS ID per group (Linux uses only the first)
ITS_GROUP_REVISION = 0
NAMED_COMPONENT_REVISION = 2
ROOT_COMPLEX_REVISION = 1            # defines Memory Address Size Limit
GIC_MSI_TARGET_REVISION = 1
GIC_MSI_TARGET_LEN = 28
DIRECT_LPI_NODE_LEN = GIC_MSI_TARGET_LEN
DIRECT_LPI_FLAG = 1 << 0             # MSIs target GICR_SETLPIR of any RD
MBI_FLAG = 1 << 1                    # MSIs target GICD_SETSPI_NSR, SPIs of the node's range
RC_NODE_LEN = 36                     # root complex node (with the address size limit)
NC_FIXED_LEN = 29                    # named component node before its object name
ID_MAPPING_LEN = 20
ID_SINGLE_MAPPING = 1 << 0           # ID mapping flags: the component's one ID

_NODE = struct.Struct("<BHBIII")      # type, length, revision, identifier, #mappings, mapping ref
_MAPPING = struct.Struct("<IIIII")    # input base, ID count - 1, output base, output ref, flags
# coherent, alloc hints, reserved, mem flags, ATS, segment, memory address size limit, reserved
_RC_TAIL = struct.Struct("<IBHBIIB3s")
_NC_TAIL = struct.Struct("<IIBHBB")   # flags, coherent, alloc hints, reserved, mem flags, limit
_TARGET_TAIL = struct.Struct("<III")  # flags, first SPI, number of SPIs
assert _NODE.size == 16 and _MAPPING.size == ID_MAPPING_LEN
assert 16 + _RC_TAIL.size == RC_NODE_LEN and 16 + _NC_TAIL.size == NC_FIXED_LEN
assert 16 + _TARGET_TAIL.size == GIC_MSI_TARGET_LEN
_NODE_NAMES = {IORT_NODE_ITS_GROUP: "ITS group", IORT_NODE_NAMED_COMPONENT: "named component",
               IORT_NODE_ROOT_COMPLEX: "root complex", IORT_NODE_SMMU_V1V2: "SMMUv1/v2",
               IORT_NODE_SMMU_V3: "SMMUv3", 0x05: "PMCG", 0x06: "RMR",
               IORT_NODE_GIC_MSI_TARGET: "GIC MSI target"}


@dataclass(frozen=True)
class DirectLpiRoute:
    """Requester IDs ``rid_base .. rid_base + count - 1`` of PCI segment ``segment`` signal
    their MSIs by Direct LPI."""

    segment: int
    rid_base: int
    count: int


@dataclass(frozen=True)
class MbiRoute:
    """Requester IDs ``rid_base .. rid_base + count - 1`` of PCI segment ``segment`` signal
    their MSIs as MBIs, SPIs ``spi_base .. spi_base + spi_count - 1`` (a GIC MSI target
    node in MBI mode)."""

    segment: int
    rid_base: int
    count: int
    spi_base: int
    spi_count: int


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
class ComponentRoute:
    """Named component ``path`` (the ACPI full path of its device object, as Linux's
    ``iort_match_node_callback`` compares it) signals its MSIs to ``target``:
    ``"direct-lpi"``, ``"mbi"`` (SPIs ``spis`` = (first, count)) or ``"its"`` (GIC ITS
    ``its_id``, as DeviceID ``device_id``).  One single mapping (flag bit 0)."""

    path: str
    target: str
    its_id: int = 0
    device_id: int = 0
    spis: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.target not in ("direct-lpi", "mbi", "its"):
            raise FirmwareError(f"IORT: named component {self.path}: target {self.target!r} "
                                "is none of direct-lpi, mbi, its", errno.EINVAL)

    @property
    def name(self) -> str:
        """The device's own name: the last segment of the path, lower-cased, trailing
        underscores dropped (``\\_SB_.DMA0`` -> ``dma0``), as the model names devices."""
        return self.path.rsplit(".", 1)[-1].lstrip("\\").rstrip("_").lower()


Route = DirectLpiRoute | MbiRoute | ItsRoute | ComponentRoute


@dataclass(frozen=True)
class Iort:
    """What an IORT says about MSIs: its Direct LPI, MBI and ITS routes of root complexes,
    its named components' routes, the GIC ITS IDs of each ITS group node and the SPI
    ranges of the MBI targets (in table order)."""

    direct_lpi: tuple[DirectLpiRoute, ...] = ()
    its: tuple[ItsRoute, ...] = ()
    its_groups: tuple[tuple[int, ...], ...] = ()
    mbi: tuple[MbiRoute, ...] = ()
    components: tuple[ComponentRoute, ...] = ()
    mbi_ranges: tuple[tuple[int, int], ...] = ()
    revision: int = IORT_REVISION


def direct_lpi_routes(board: BoardDescription) -> tuple[tuple[DirectLpiRoute, ...], list[str]]:
    """The IORT routes that say what ``board``'s PCI host bridges say about Direct LPI
    (and lines for what these routes leave out: none since MBI has its proposed form,
    :func:`mbi_routes`)."""
    routes: list[DirectLpiRoute] = []
    dlpi = board.gic.direct_lpi_fwnode
    for host in board.pci_hosts:
        for r in host.msi_routes():
            if r.parent is dlpi and board.gic.direct_lpi:
                routes.append(DirectLpiRoute(host.segment, r.rid_base, r.count))
    return tuple(routes), []


def mbi_routes(board: BoardDescription) -> tuple[MbiRoute, ...]:
    """The IORT routes (root complex -> GIC MSI target in MBI mode) of ``board``'s PCI
    host bridges' requester IDs that signal MBIs: each to the GIC's first MBI range (the
    range Linux's MBI driver allocates from first)."""
    gic = board.gic
    if not (gic.msi_controller and gic.mbi_ranges):
        return ()
    first, count = gic.mbi_ranges[0]
    return tuple(MbiRoute(host.segment, r.rid_base, r.count, first, count)
                 for host in board.pci_hosts for r in host.msi_routes()
                 if r.parent is gic.fwnode)


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


def build_iort(routes: Sequence[Route], *, its_ids: Sequence[int] | None = None,
               direct_lpi_node: bool = True, segments: Sequence[int] = ()) -> bytes:
    """An IORT with the proposed GIC MSI target node in Direct LPI mode (unless
    ``direct_lpi_node`` is False), one in MBI mode per SPI range ``routes`` name, an ITS
    group node per GIC ITS ID in ``its_ids`` (default: those ``routes`` name, in order), a
    root complex node per segment whose requester IDs ``routes`` map, and per segment of
    ``segments`` (with no ID mapping if no route names it), and a named component node
    per :class:`ComponentRoute`.

    Raises FirmwareError (EINVAL) for a route to a node the table would not have, or a
    named component whose path is not an ACPI name path."""
    ids = list(dict.fromkeys(
        r.its_id for r in routes
        if isinstance(r, ItsRoute) or (isinstance(r, ComponentRoute) and r.target == "its"))) \
        if its_ids is None else list(its_ids)
    spis = list(dict.fromkeys(
        [(r.spi_base, r.spi_count) for r in routes if isinstance(r, MbiRoute)]
        + [r.spis for r in routes if isinstance(r, ComponentRoute) and r.target == "mbi"]))
    nodes = bytearray()
    targets: dict[object, int] = {}           # "direct-lpi" | ("mbi", range) | ITS ID -> offset
    if direct_lpi_node:
        targets["direct-lpi"] = IORT_FIXED_LEN
        nodes += _gic_msi_target(DIRECT_LPI_FLAG, 0, 0)
    for first, count in spis:
        targets[("mbi", first, count)] = IORT_FIXED_LEN + len(nodes)
        nodes += _gic_msi_target(MBI_FLAG, first, count)
    for its_id in ids:
        targets[its_id] = IORT_FIXED_LEN + len(nodes)
        nodes += _NODE.pack(IORT_NODE_ITS_GROUP, ITS_GROUP_NODE_LEN, ITS_GROUP_REVISION, 0, 0,
                            0)
        nodes += struct.pack("<II", 1, its_id)
    per_segment: dict[int, list[Route]] = {s: [] for s in segments}
    for r in routes:
        if not isinstance(r, ComponentRoute):
            per_segment.setdefault(r.segment, []).append(r)
    for segment, maps in per_segment.items():
        length = RC_NODE_LEN + ID_MAPPING_LEN * len(maps)
        nodes += _NODE.pack(IORT_NODE_ROOT_COMPLEX, length, ROOT_COMPLEX_REVISION, 0, len(maps),
                            RC_NODE_LEN if maps else 0)
        nodes += _RC_TAIL.pack(1, 0, 0, 0, 0, segment, 48, b"\0\0\0")
        for m in maps:
            assert not isinstance(m, ComponentRoute)
            nodes += _MAPPING.pack(m.rid_base, m.count - 1, *_mapping_target(m, targets), 0)
    components = [r for r in routes if isinstance(r, ComponentRoute)]
    for c in components:
        name = _acpi_path(c.path)
        ref = NC_FIXED_LEN + len(name)
        nodes += _NODE.pack(IORT_NODE_NAMED_COMPONENT, ref + ID_MAPPING_LEN,
                            NAMED_COMPONENT_REVISION, 0, 1, ref)
        nodes += _NC_TAIL.pack(0, 1, 0, 0, 0, 48) + name
        nodes += _MAPPING.pack(0, 0, *_mapping_target(c, targets), ID_SINGLE_MAPPING)
    count = len(ids) + len(spis) + len(per_segment) + len(components) + int(direct_lpi_node)
    body = struct.pack("<III", count, IORT_FIXED_LEN, 0) + nodes
    table = bytearray(_header(b"IORT", IORT_REVISION, len(body)) + body)
    checksum_fix(table)
    return bytes(table)


def _gic_msi_target(flags: int, first: int, count: int) -> bytes:
    return (_NODE.pack(IORT_NODE_GIC_MSI_TARGET, GIC_MSI_TARGET_LEN, GIC_MSI_TARGET_REVISION,
                       0, 0, 0) + _TARGET_TAIL.pack(flags, first, count))


def _acpi_path(path: str) -> bytes:
    """``path`` as a named component's Device Object Name: NUL-terminated ASCII, padded
    to a 4-byte boundary.  A path is ``\\`` then 4-character name segments joined by
    dots (A-Z, 0-9, _; not starting with a digit)."""
    segs = path[1:].split(".") if path.startswith("\\") else []
    if not segs or not all(len(s) == 4 and s[0] not in "0123456789"
                           and all(ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_" for ch in s)
                           for s in segs):
        raise FirmwareError(f"IORT: named component {path!r}: not an absolute ACPI name "
                            "path (\\ then 4-character segments A-Z 0-9 _, e.g. \\_SB_.DMA0)",
                            errno.EINVAL)
    raw = path.encode("ascii") + b"\0"
    return raw + b"\0" * (-len(raw) % 4)


def component_path(name: str) -> str:
    """The ACPI path the IORT writer gives a model platform device ``name``: ``\\_SB_.``
    and its name upper-cased, padded with ``_`` to 4 characters.  FirmwareError if
    ``name`` cannot be a name segment."""
    seg = name.upper().ljust(4, "_")
    path = f"\\_SB_.{seg}"
    if len(seg) != 4:
        raise FirmwareError(f"IORT: platform device {name!r}: an ACPI name segment has at "
                            "most 4 characters", errno.EINVAL)
    _acpi_path(path)
    return path


def _mapping_target(m: Route, targets: dict[object, int]) -> tuple[int, int]:
    """(output base, output reference) of an ID mapping for route ``m``."""
    what = (f"named component {m.path}" if isinstance(m, ComponentRoute) else
            f"segment {m.segment} RIDs {m.rid_base:#x}+{m.count:#x}")
    key: object
    if isinstance(m, DirectLpiRoute) or (isinstance(m, ComponentRoute)
                                         and m.target == "direct-lpi"):
        key, base, name = "direct-lpi", 0, "Direct LPI, which has no GIC MSI target node"
    elif isinstance(m, MbiRoute):
        key, base = ("mbi", m.spi_base, m.spi_count), 0
        name = f"MBI SPIs {m.spi_base}+{m.spi_count}, which have no GIC MSI target node"
    elif isinstance(m, ComponentRoute) and m.target == "mbi":
        key, base = ("mbi", *m.spis), 0
        name = f"MBI SPIs {m.spis[0]}+{m.spis[1]}, which have no GIC MSI target node"
    elif isinstance(m, ItsRoute):
        key, base, name = m.its_id, m.output_base, f"GIC ITS {m.its_id}, which has no ITS group"
    else:
        key, base, name = m.its_id, m.device_id, f"GIC ITS {m.its_id}, which has no ITS group"
    if key not in targets:
        raise FirmwareError(f"IORT: {what} route to {name} in the table", errno.EINVAL)
    return base, targets[key]


def parse_iort(data: bytes) -> tuple[DirectLpiRoute, ...]:
    """The requester-ID ranges an IORT routes to a Direct LPI node (:func:`read_iort` has
    the other routes too); raise FirmwareError naming the offset and field of a problem."""
    return read_iort(data).direct_lpi


def read_iort(data: bytes) -> Iort:
    """Every route an IORT gives: root complex ID mappings and named components' to the
    proposed GIC MSI target nodes (Direct LPI, MBI) or to an ITS group (the group's first
    GIC ITS ID, as Linux's ``iort_dev_find_its_id`` takes it).  A mapping that reaches
    one of them through an SMMU is refused (the model has no SMMU, and a Direct LPI
    doorbell behind one needs an IOMMU mapping per redistributor: docs/firmware.md).
    PMCG and RMR nodes are passed over.  Raise FirmwareError naming the offset and field
    of the first problem."""
    header = parse_header(data, b"IORT")
    if len(data) < IORT_FIXED_LEN:
        raise FirmwareError(f"IORT: {len(data)} bytes, shorter than the {IORT_FIXED_LEN}-byte "
                            "IORT header")
    count, first, _ = struct.unpack_from("<III", data, HEADER_LEN)
    nodes: dict[int, tuple[int, int]] = {}       # offset -> (type, length)
    identifiers: dict[int, int] = {}             # identifier -> offset (revision >= 3)
    off = first
    for i in range(count):
        if off < IORT_FIXED_LEN or off + _NODE.size > len(data):
            raise FirmwareError(f"IORT: node {i} at offset {off:#x} lies outside the table "
                                f"({len(data)} bytes)")
        kind, length, _, ident, _, _ = _NODE.unpack_from(data, off)
        if length < _NODE.size or off + length > len(data):
            raise FirmwareError(f"IORT: offset {off:#x} (node {i}, type {kind:#04x}) Length: "
                                f"{length} does not fit the table")
        if header.revision >= IORT_IDENTIFIER_REVISION:
            if ident in identifiers:
                raise FirmwareError(f"IORT: offset {off:#x} (node {i}) Identifier: {ident:#x} "
                                    f"is also the node's at {identifiers[ident]:#x}; from "
                                    f"table revision {IORT_IDENTIFIER_REVISION} node "
                                    "identifiers are unique")
            identifiers[ident] = off
        nodes[off] = (kind, length)
        off += length
    groups: dict[int, tuple[int, ...]] = {}
    targets: dict[int, tuple[int, int, int]] = {}     # offset -> (flags, first SPI, count)
    for off, (kind, length) in nodes.items():
        if kind == IORT_NODE_GIC_MSI_TARGET:
            targets[off] = _gic_msi_target_node(data, off, length, targets)
        elif kind == IORT_NODE_ITS_GROUP:
            groups[off] = _its_group(data, off, length)
    walk = _MappingWalk(data, nodes, groups, targets)
    dlpi: list[DirectLpiRoute] = []
    mbi: list[MbiRoute] = []
    its: list[ItsRoute] = []
    components: list[ComponentRoute] = []
    for off, (kind, length) in nodes.items():
        if kind == IORT_NODE_ROOT_COMPLEX:
            for route in walk.root_complex(off, length):
                if isinstance(route, ItsRoute):
                    its.append(route)
                elif isinstance(route, MbiRoute):
                    mbi.append(route)
                else:
                    dlpi.append(route)
        elif kind == IORT_NODE_NAMED_COMPONENT:
            c = walk.named_component(off, length)
            if c is not None:
                components.append(c)
    ranges = tuple((f, n) for flags, f, n in targets.values() if flags == MBI_FLAG)
    return Iort(tuple(dlpi), tuple(its), tuple(groups.values()), tuple(mbi), tuple(components),
                ranges, header.revision)


def _gic_msi_target_node(data: bytes, off: int, length: int,
                         seen: dict[int, tuple[int, int, int]]) -> tuple[int, int, int]:
    where = f"IORT: offset {off:#x} (GIC MSI target)"
    _, _, revision, _, nmaps, _ = _NODE.unpack_from(data, off)
    if revision != GIC_MSI_TARGET_REVISION:
        raise FirmwareError(f"{where} Revision: {revision}, this reader knows revision "
                            f"{GIC_MSI_TARGET_REVISION} of the proposed node")
    if length < GIC_MSI_TARGET_LEN:
        raise FirmwareError(f"{where} Length: {length}, expected {GIC_MSI_TARGET_LEN}")
    if nmaps:
        raise FirmwareError(f"{where} Number of ID mappings: {nmaps}: a GIC MSI target is "
                            "where mappings end, it maps nothing")
    flags, spi, n = _TARGET_TAIL.unpack_from(data, off + 16)
    if flags & ~(DIRECT_LPI_FLAG | MBI_FLAG):
        raise FirmwareError(f"{where} Flags at +16: {flags:#x}, reserved bits set")
    if flags == DIRECT_LPI_FLAG:
        if spi or n:
            raise FirmwareError(f"{where} First SPI / Number of SPIs at +20: {spi}, {n}: "
                                "must be 0 for Direct LPI")
        other = [o for o, t in seen.items() if t[0] == DIRECT_LPI_FLAG]
        if other:
            raise FirmwareError(f"{where}: a second Direct LPI target (the first is at "
                                f"{other[0]:#x}): there is one set of redistributors")
    elif flags == MBI_FLAG:
        if n == 0 or spi < 32 or spi + n - 1 > MAX_SPI:
            raise FirmwareError(f"{where} First SPI / Number of SPIs at +20: {spi}, {n}: not "
                                f"a range of SPIs (32..{MAX_SPI})")
        for o, (f2, s2, n2) in seen.items():
            if f2 == MBI_FLAG and spi < s2 + n2 and s2 < spi + n:
                raise FirmwareError(f"{where} SPIs {spi}+{n} overlap the MBI target's at "
                                    f"{o:#x} ({s2}+{n2})")
    else:
        raise FirmwareError(f"{where} Flags at +16: {flags:#x}, "
                            + ("bit 0 (Direct LPI) and bit 1 (MBI) are both set" if flags
                               else "bit 0 (Direct LPI) is clear, and bit 1 (MBI) too")
                            + ": exactly one is")
    return flags, spi, n


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


class _MappingWalk:
    """Follows ID mappings from root complexes and named components to their MSI
    controller node."""

    def __init__(self, data: bytes, nodes: dict[int, tuple[int, int]],
                 groups: dict[int, tuple[int, ...]],
                 targets: dict[int, tuple[int, int, int]]) -> None:
        self.data, self.nodes, self.groups, self.targets = data, nodes, groups, targets

    def _mappings(self, where: str, off: int, length: int, fixed: int
                  ) -> list[tuple[int, int, int, int, int, int]]:
        """(index, input base, span, output base, output ref, flags) of a node's ID
        mappings, each checked to fit the node and to reference a node."""
        _, _, _, _, nmaps, ref = _NODE.unpack_from(self.data, off)
        if ref + nmaps * ID_MAPPING_LEN > length or (nmaps and ref < fixed):
            raise FirmwareError(f"{where} ID mappings: {nmaps} at +{ref:#x} do not fit the "
                                f"{length}-byte node")
        out = []
        for j in range(nmaps):
            in_base, span, out_base, out_ref, flags = _MAPPING.unpack_from(
                self.data, off + ref + j * ID_MAPPING_LEN)
            if out_ref not in self.nodes:
                raise FirmwareError(f"{where} ID mapping {j} Output Reference: {out_ref:#x} is "
                                    "not the offset of a node")
            if flags & ~ID_SINGLE_MAPPING:
                raise FirmwareError(f"{where} ID mapping {j} Flags: {flags:#x}, reserved bits "
                                    "set")
            kind = self.nodes[out_ref][0]
            if kind in (IORT_NODE_SMMU_V1V2, IORT_NODE_SMMU_V3):
                self._behind_smmu(where, j, out_ref)
            if kind == IORT_NODE_GIC_MSI_TARGET and out_base:
                raise FirmwareError(f"{where} ID mapping {j} Output Base: {out_base:#x}, must "
                                    "be 0: a GIC MSI target takes no DeviceID (the MSI's data "
                                    "is the INTID)")
            out.append((j, in_base, span, out_base, out_ref, flags))
        return out

    def _behind_smmu(self, where: str, j: int, smmu: int) -> None:
        kind, length = self.nodes[smmu]
        name = _NODE_NAMES[kind]
        _, _, _, _, nmaps, ref = _NODE.unpack_from(self.data, smmu)
        reach = sorted({_NODE_NAMES.get(self.nodes.get(o, (-1, 0))[0], "node") + f" at {o:#x}"
                        for k in range(nmaps) if ref + (k + 1) * ID_MAPPING_LEN <= length
                        for o in [_MAPPING.unpack_from(self.data,
                                                       smmu + ref + k * ID_MAPPING_LEN)[3]]})
        raise FirmwareError(f"{where} ID mapping {j} goes through the {name} at {smmu:#x}"
                            + (f" to {', '.join(reach)}" if reach else "")
                            + ": the model has no SMMU (a Direct LPI doorbell behind one "
                            "needs an IOMMU mapping of every redistributor's GICR_SETLPIR "
                            "page: docs/firmware.md)")

    def root_complex(self, off: int, length: int
                     ) -> list[DirectLpiRoute | MbiRoute | ItsRoute]:
        where = f"IORT: offset {off:#x} (root complex)"
        if length < RC_NODE_LEN:
            raise FirmwareError(f"{where} Length: {length}, expected at least {RC_NODE_LEN}")
        segment = _RC_TAIL.unpack_from(self.data, off + 16)[5]
        routes: list[DirectLpiRoute | MbiRoute | ItsRoute] = []
        for j, in_base, span, out_base, out_ref, flags in self._mappings(where, off, length,
                                                                         RC_NODE_LEN):
            if flags & ID_SINGLE_MAPPING:
                raise FirmwareError(f"{where} ID mapping {j} Flags: single mapping: this "
                                    "reader takes requester-ID ranges from a root complex")
            kind = self.nodes[out_ref][0]
            if kind == IORT_NODE_ITS_GROUP:
                if out_base + span >= 1 << 32:
                    raise FirmwareError(f"{where} ID mapping {j} Output Base: {out_base:#x} + "
                                        f"{span:#x} IDs run past 32-bit DeviceIDs")
                routes.append(ItsRoute(segment, in_base, span + 1, self.groups[out_ref][0],
                                       out_base))
            elif kind == IORT_NODE_GIC_MSI_TARGET:
                tflags, spi, n = self.targets[out_ref]
                routes.append(DirectLpiRoute(segment, in_base, span + 1)
                              if tflags == DIRECT_LPI_FLAG else
                              MbiRoute(segment, in_base, span + 1, spi, n))
        return routes

    def named_component(self, off: int, length: int) -> ComponentRoute | None:
        where = f"IORT: offset {off:#x} (named component)"
        if length < NC_FIXED_LEN + 1:
            raise FirmwareError(f"{where} Length: {length}, expected at least "
                                f"{NC_FIXED_LEN + 1}")
        raw = self.data[off + NC_FIXED_LEN:off + length]
        end = raw.find(b"\0")
        try:
            path = raw[:end].decode("ascii") if end > 0 else ""
            _acpi_path(path)
        except (UnicodeDecodeError, FirmwareError):
            raise FirmwareError(f"{where} Device Object Name at +{NC_FIXED_LEN:#x}: "
                                f"{raw[:max(end, 0) or 16]!r} is not a NUL-terminated ACPI "
                                "name path") from None
        maps = self._mappings(f"{where} {path}", off, length, NC_FIXED_LEN + end + 1)
        msi = [m for m in maps if self.nodes[m[4]][0] in (IORT_NODE_ITS_GROUP,
                                                            IORT_NODE_GIC_MSI_TARGET)]
        if not msi:
            return None
        if len(msi) > 1 or not msi[0][5] & ID_SINGLE_MAPPING:
            raise FirmwareError(f"{where} {path}: {len(msi)} ID mappings to MSI controllers; "
                                "a named component's MSIs are one single mapping (flag bit 0)")
        _j, _in, _span, out_base, out_ref, _f = msi[0]
        if self.nodes[out_ref][0] == IORT_NODE_ITS_GROUP:
            return ComponentRoute(path, "its", its_id=self.groups[out_ref][0],
                                  device_id=out_base)
        tflags, spi, n = self.targets[out_ref]
        return (ComponentRoute(path, "direct-lpi") if tflags == DIRECT_LPI_FLAG else
                ComponentRoute(path, "mbi", spis=(spi, n)))


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
