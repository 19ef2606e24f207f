"""ACPI MADT ("APIC") tables for a GICv3 without an ITS: write and read.

The layout is ACPI 6.3's (MADT revision 5), the newest that the Debian
acpica-tools (``iasl`` 20200925) decodes field by field:

* the 36-byte system description header, then ``Local Interrupt Controller
  Address`` (u32, 0 on Arm) and ``Flags`` (u32, 0), at offsets 36 and 40;
* a GICC (type 0x0B, 80 bytes) per CPU: CPU interface number, ACPI processor UID,
  flags (bit 0 Enabled), ..., ``GICR Base Address`` at +60, ``MPIDR`` at +68;
* one GICD (type 0x0C, 24 bytes): GIC ID, base address, system vector base (0),
  GIC version (3) at +20;
* a GICR (type 0x0E, 16 bytes) per redistributor region: discovery range base
  (u64 at +4) and length (u32 at +12).

The writer describes redistributors with GICR subtables (regions), as QEMU's
``virt`` does, and leaves GICC.GICR Base Address 0; the reader also accepts
the per-CPU form (every enabled GICC names its single RD, no GICR subtable), as
Linux's ``gic_acpi_count_gicr_regions`` does, and refuses a table that mixes
the two.  Nothing in the MADT can say "Direct LPI": that needs the proposed IORT
node (R7), so a board read from a MADT alone never offers it.

Every problem is reported as a :class:`FirmwareError` naming the table, the
byte offset and the field.
"""

from __future__ import annotations

import errno
import itertools
import struct
from dataclasses import dataclass

from directlpi.errors import DirectLPIError
from directlpi.kernel.fwdesc import BoardDescription, GicDescription

HEADER_LEN = 36
MADT_FIXED_LEN = 44
MADT_REVISION = 5          # ACPI 6.3
GICC, GICD, GICR = 0x0B, 0x0C, 0x0E
GICC_LEN, GICD_LEN, GICR_LEN = 80, 24, 16
GICC_ENABLED = 1 << 0
GIC_VERSION_V3 = 3
GICR_FRAME_PAIR = 0x20000   # one RD without VLPIs: RD_base + SGI_base

_HEADER = struct.Struct("<4sIBB6s8sI4sI")
_GICC = struct.Struct("<BBHIIIIIQQQQIQQBBH")
_GICD = struct.Struct("<BBHIQIB3s")
_GICR = struct.Struct("<BBHQI")
assert _HEADER.size == HEADER_LEN and _GICC.size == GICC_LEN
assert _GICD.size == GICD_LEN and _GICR.size == GICR_LEN

_NAMES = {GICC: "GICC", GICD: "GICD", GICR: "GICR"}
_LENGTHS = {GICC: GICC_LEN, GICD: GICD_LEN, GICR: GICR_LEN}


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
    table = bytearray(_header(b"APIC", MADT_REVISION, len(body)) + body)
    checksum_fix(table)
    return bytes(table)


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

    def gic(self) -> GicDescription:
        """The GIC description a kernel boots from; a MADT never names Direct LPI."""
        return GicDescription(dist_base=self.dist_base, redist_regions=self.redist_regions)


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
    return Madt(tuple(cpus), gicds[0][1], tuple(regions), in_gicc)


def _check_overlaps(regions: list[tuple[int, int]]) -> None:
    ordered = sorted(regions)
    for (a, alen), (b, _) in itertools.pairwise(ordered):
        if a + alen > b:
            raise FirmwareError(f"APIC: GICR regions @{a:#x} (+{alen:#x}) and @{b:#x} overlap")


# -- IORT, with the proposed Direct LPI node -------------------------------------------------------
#
# IORT (revision 0, as iasl 20200925 knows it) routes the requester IDs of root
# complexes and named components to ITS groups only.  We PROPOSE one more node
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


def build_iort(routes: tuple[DirectLpiRoute, ...]) -> bytes:
    """An IORT with one proposed Direct LPI node and a root complex node per segment whose
    requester IDs map to it."""
    dlpi_off = IORT_FIXED_LEN
    nodes = bytearray(_NODE.pack(IORT_NODE_DIRECT_LPI, DIRECT_LPI_NODE_LEN, 0, 0, 0, 0))
    nodes += struct.pack("<II", DIRECT_LPI_FLAG, 0)
    segments: dict[int, list[DirectLpiRoute]] = {}
    for r in routes:
        segments.setdefault(r.segment, []).append(r)
    for segment, maps in segments.items():
        length = RC_NODE_LEN + ID_MAPPING_LEN * len(maps)
        nodes += _NODE.pack(IORT_NODE_ROOT_COMPLEX, length, 0, 0, len(maps), RC_NODE_LEN)
        nodes += _RC_TAIL.pack(1, 0, 0, 0, 0, segment, 48, b"\0\0\0")
        for m in maps:
            nodes += _MAPPING.pack(m.rid_base, m.count - 1, 0, dlpi_off, 0)
    body = struct.pack("<III", 1 + len(segments), IORT_FIXED_LEN, 0) + nodes
    table = bytearray(_header(b"IORT", IORT_REVISION, len(body)) + body)
    checksum_fix(table)
    return bytes(table)


def parse_iort(data: bytes) -> tuple[DirectLpiRoute, ...]:
    """The requester-ID ranges an IORT routes to a Direct LPI node.  ID mappings to an ITS
    group are refused (this model has no ITS); other node types are passed over."""
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
    routes: list[DirectLpiRoute] = []
    for off, (kind, length) in nodes.items():
        if kind == IORT_NODE_DIRECT_LPI:
            _check_direct_lpi_node(data, off, length)
        elif kind == IORT_NODE_ROOT_COMPLEX:
            routes += _root_complex_routes(data, off, length, nodes)
    return tuple(routes)


def _check_direct_lpi_node(data: bytes, off: int, length: int) -> None:
    where = f"IORT: offset {off:#x} (Direct LPI node)"
    if length < DIRECT_LPI_NODE_LEN:
        raise FirmwareError(f"{where} Length: {length}, expected {DIRECT_LPI_NODE_LEN}")
    (flags,) = struct.unpack_from("<I", data, off + 16)
    if not flags & DIRECT_LPI_FLAG:
        raise FirmwareError(f"{where} Flags at +16: {flags:#x}, bit 0 (Direct LPI) is clear")
    if flags & ~DIRECT_LPI_FLAG:
        raise FirmwareError(f"{where} Flags at +16: {flags:#x}, reserved bits set")


def _root_complex_routes(data: bytes, off: int, length: int,
                         nodes: dict[int, tuple[int, int]]) -> list[DirectLpiRoute]:
    where = f"IORT: offset {off:#x} (root complex)"
    if length < RC_NODE_LEN:
        raise FirmwareError(f"{where} Length: {length}, expected at least {RC_NODE_LEN}")
    _, _, _, _, nmaps, ref = _NODE.unpack_from(data, off)
    segment = _RC_TAIL.unpack_from(data, off + 16)[5]
    if ref + nmaps * ID_MAPPING_LEN > length or (nmaps and ref < RC_NODE_LEN):
        raise FirmwareError(f"{where} ID mappings: {nmaps} at +{ref:#x} do not fit the "
                            f"{length}-byte node")
    routes = []
    for j in range(nmaps):
        m_off = off + ref + j * ID_MAPPING_LEN
        in_base, span, _, out_ref, _ = _MAPPING.unpack_from(data, m_off)
        target = nodes.get(out_ref)
        if target is None:
            raise FirmwareError(f"{where} ID mapping {j} Output Reference: {out_ref:#x} is "
                                "not the offset of a node")
        if target[0] == IORT_NODE_ITS_GROUP:
            raise FirmwareError(f"{where} ID mapping {j} routes to an ITS group at "
                                f"{out_ref:#x}, but this GICv3 has no ITS")
        if target[0] == IORT_NODE_DIRECT_LPI:
            routes.append(DirectLpiRoute(segment, in_base, span + 1))
    return routes
