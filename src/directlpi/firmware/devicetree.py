"""Devicetree in; the board description and the hardware it describes out.

``read_board(root)`` reads a parsed tree (:mod:`directlpi.firmware.fdt`) the way
Linux's GICv3, ECAM host and MSI code read it, and checks it strictly.  It
understands:

* ``/cpus/cpu@N`` -- ``reg`` is the MPIDR affinity (``/cpus`` ``#address-cells``
  1 or 2, ``#size-cells`` 0); logical CPU *i* is the *i*-th available cpu node.
* ``device_type = "memory"`` nodes -- RAM.
* the ``arm,gic-v3`` node -- ``reg`` = GICD, then ``#redistributor-regions``
  GICR regions (any further GICC/GICH/GICV entries are ignored),
  ``redistributor-stride``, ``msi-controller`` + ``mbi-ranges`` (MBIs), the
  Direct LPI MSI controller: a child node ``compatible = "arm,gic-v3-direct-lpi";
  msi-controller; #msi-cells = <0>;`` (the proposed binding,
  ``bindings/interrupt-controller/arm,gic-v3-direct-lpi.yaml``), and as upstream
  writes them, ITS children (``arm,gic-v3-its``, ``msi-controller``,
  ``#msi-cells = <1>``, one 128 KiB ``reg``; at most 16) and GICv2m frame children
  (``arm,gic-v2m-frame``, ``msi-controller``, one ``reg`` of at least 4 KiB,
  64 KiB-aligned as the model maps 64 KiB frames, optional ``arm,msi-base-spi`` +
  ``arm,msi-num-spis``).  Their ``reg`` are CPU addresses: the GIC node needs an
  empty ``ranges``.
* one ``pci-host-ecam-generic`` node -- ECAM ``reg``, ``bus-range``, the 32-bit
  memory window of ``ranges``, ``linux,pci-domain``, and ``msi-parent`` or
  ``msi-map`` naming, per requester ID, the GIC node (MBI), the Direct LPI node, an
  ITS (``msi-map``'s msi-base is the DeviceID of rid-base) or the first GICv2m frame
  (Linux registers one GICv2m domain, under the first frame's node).
* an optional ``directlpi,hardware-model`` node: not firmware, but the silicon the
  model builds where a devicetree says nothing (RD DirectLPI support, INTID bits,
  SPI count, LPIs, ITS PTA, and -- to model a devicetree that is wrong -- where the
  RDs really are).  The kernel never reads it.

The silicon follows the tree for the ITSes (hardware option ``its``) and the GICv2m
frames (``v2m_frames``: base, first SPI, count): a frame's SPIs are its override
properties when given, else QEMU virt's layout (frame *k*: 64 SPIs from INTID
80 + 64 *k*), and must lie within the implemented SPIs.

``msi-parent`` to an ITS follows Linux: ``of_msi_get_domain`` walks ``msi-parent``
with ``#msi-cells``, so the ITS's one specifier cell must be there (``<&its 0>``;
``<&its>`` finds no domain); for PCI Linux ignores its value (no ``msi-map``: the
DeviceID is the requester ID, ``of_msi_map_id``), so the loader requires 0 and says
to use ``msi-map`` to offset DeviceIDs.  MBI, Direct LPI and GICv2m take no
specifier: their ``msi-map`` entries keep msi-base 0.

Every problem found is reported as ``<node path>: <property>: <what is wrong>``;
:class:`DtError` carries them all: independent sections (CPUs, memory, GIC, each part
of the host bridge, the address map, the RD count) are all checked even when an
earlier one has a problem.  Choices where Linux is lenient and the model
is strict (so that firmware bugs show): ``msi-parent`` together with ``msi-map``,
an ECAM window smaller than ``bus-range``, a GICR region that is not a whole
number of redistributors, an ITS or GICv2m frame without ``msi-controller`` (Linux
skips it), one of the two SPI override properties without the other (Linux ignores
it), a non-zero ``msi-parent`` specifier to an ITS, and two ``msi-map`` entries
sharing an ITS's DeviceIDs are errors, not warnings.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from directlpi.firmware.acpi import V2M_FIRST_SPI, V2M_SPIS, FirmwareError, v2m_default_spis
from directlpi.firmware.fdt import FdtNode, parse_fdt
from directlpi.firmware.files import devicetree_blob
from directlpi.hw.its import DEVICE_ID_BITS
from directlpi.hw.regs import ITS_SIZE
from directlpi.kernel.fwdesc import (
    BoardDescription,
    GicDescription,
    ItsDescription,
    MsiRoute,
    PciHostDescription,
    V2mFrameDescription,
    VmbusDescription,
)
from directlpi.kernel.irq.domain import Fwnode

GIC_COMPAT = "arm,gic-v3"
DIRECT_LPI_COMPAT = "arm,gic-v3-direct-lpi"
ITS_COMPAT = "arm,gic-v3-its"
V2M_COMPAT = "arm,gic-v2m-frame"
ECAM_COMPAT = "pci-host-ecam-generic"
MODEL_COMPAT = "directlpi,hardware-model"
VMBUS_COMPAT = "microsoft,vmbus"
HV_VPCI_SPI_FIRST, HV_VPCI_SPI_LAST = 64, 1019
"""pci-hyperv's SPI range on arm64 (HV_PCI_MSI_SPI_START, + HV_PCI_MSI_SPI_NR - 1)."""

SZ_4K = 0x1000
SZ_64K = 0x1_0000
SZ_1M = 0x10_0000
RD_FRAMES = 2 * SZ_64K
"""Stride of a GICv3 redistributor without VLPIs (RD_base + SGI_base): the model's RDs."""
MAX_CPUS = 512
MAX_ITS = 16
MAX_SPI_INTID = 1019
MPIDR_AFF_MASK = 0xFF_00FF_FFFF
PCI_SPACE_MEM32, PCI_SPACE_MEM64 = 2, 3


class DtError(FirmwareError):
    """A devicetree that cannot be used; ``problems`` lists every problem found.

    The message is the problem, or ``<where>N problems: <first>; <second>; ...``: every
    one, on one line.  ``where`` (e.g. ``"board.dts: "``) prefixes each of ``problems``
    and, once, the message."""

    def __init__(self, problems: list[str], where: str = "") -> None:
        self.problems = [where + p for p in problems]
        text = problems[0] if len(problems) == 1 else (
            f"{len(problems)} problems: " + "; ".join(problems))
        super().__init__(where + text, errno.EINVAL)


@dataclass(frozen=True)
class DtBoard:
    """What a devicetree says: the description the kernel boots from, and the hardware."""

    board: BoardDescription
    hardware: dict[str, Any]
    """Keyword options of :class:`~directlpi.hw.machine.MachineConfig`."""
    pci: PciHostDescription | None
    notes: tuple[str, ...] = ()
    """Facts worth a line in ``directlpi check`` (what was found)."""


class _Skip(Exception):
    """Abandon the current section of the tree; its problem is already recorded."""


T = TypeVar("T")


@dataclass
class _Reader:
    root: FdtNode
    problems: list[str] = field(default_factory=list)
    parents: dict[int, FdtNode] = field(default_factory=dict)
    phandles: dict[int, FdtNode] = field(default_factory=dict)
    model: FdtNode | None = None
    """The ``directlpi,hardware-model`` node in use, once :func:`_model` has found it."""

    def __post_init__(self) -> None:
        for node in self.root.walk():
            for c in node.children:
                self.parents[id(c)] = node
            for pname in ("phandle", "linux,phandle"):
                if pname in node.props:
                    ph = self.try_u32(node, pname)
                    if ph is None:
                        continue
                    other = self.phandles.get(ph)
                    if other is not None and other is not node:
                        self.note(node, pname, f"{ph:#x} is also the phandle of {other.path}")
                    self.phandles[ph] = node

    # -- problems -------------------------------------------------------------------------------

    def note(self, node: FdtNode, prop: str | None, why: str) -> None:
        self.problems.append(f"{node.path}: {prop}: {why}" if prop else f"{node.path}: {why}")

    def fail(self, node: FdtNode, prop: str | None, why: str) -> NoReturn:
        self.note(node, prop, why)
        raise _Skip

    def _try(self, section: Callable[[], T]) -> T | None:
        try:
            return section()
        except _Skip:
            return None

    # -- properties -----------------------------------------------------------------------------

    def cells(self, node: FdtNode, prop: str) -> list[int]:
        raw = node.props[prop]
        if len(raw) % 4:
            self.fail(node, prop, f"{len(raw)} bytes, not a whole number of 32-bit cells")
        return list(struct.unpack(f">{len(raw) // 4}I", raw))

    def u32(self, node: FdtNode, prop: str, default: int | None = None) -> int:
        if prop not in node.props:
            if default is None:
                self.fail(node, prop, "missing")
            return default
        c = self.cells(node, prop)
        if len(c) != 1:
            self.fail(node, prop, f"{len(c)} cells, expected 1")
        return c[0]

    def try_u32(self, node: FdtNode, prop: str, default: int | None = None) -> int | None:
        """:meth:`u32`, or None (its problem recorded) if the property is bad or missing."""
        try:
            return self.u32(node, prop, default)
        except _Skip:
            return None

    def strings(self, node: FdtNode, prop: str) -> list[str]:
        raw = node.props.get(prop)
        if raw is None:
            return []
        if not raw.endswith(b"\0"):
            self.fail(node, prop, "not a NUL-terminated string list")
        try:
            return raw[:-1].decode("ascii").split("\0")
        except UnicodeDecodeError:
            self.fail(node, prop, "not an ASCII string list")

    def compatible(self, node: FdtNode) -> list[str]:
        return self._try(lambda: self.strings(node, "compatible")) or []

    def available(self, node: FdtNode) -> bool:
        status = self._try(lambda: self.strings(node, "status"))
        return not status or status[0] in ("okay", "ok")

    def parent(self, node: FdtNode) -> FdtNode:
        return self.parents.get(id(node), self.root)

    def address_cells(self, bus: FdtNode) -> int:
        n = self.u32(bus, "#address-cells", 2)
        if not 1 <= n <= 3:
            self.fail(bus, "#address-cells", f"{n}: only 1..3 are meaningful here")
        return n

    def size_cells(self, bus: FdtNode) -> int:
        n = self.u32(bus, "#size-cells", 1)
        if n > 2:
            self.fail(bus, "#size-cells", f"{n}: more than 2 cells")
        return n

    def reg(self, node: FdtNode, required: bool = True) -> list[tuple[int, int]]:
        """``reg`` as (address, size) in the parent bus's cells."""
        if "reg" not in node.props:
            if required:
                self.fail(node, "reg", "missing")
            return []
        bus = self.parent(node)
        ac, sc = self.address_cells(bus), self.size_cells(bus)
        c = self.cells(node, "reg")
        width = ac + sc
        if not c or len(c) % width:
            self.fail(node, "reg", f"{len(c)} cells, not a multiple of {width} "
                      f"(#address-cells {ac} + #size-cells {sc} of {bus.path})")
        return [(_number(c[i:i + ac]), _number(c[i + ac:i + width]))
                for i in range(0, len(c), width)]

    def find(self, compat: str) -> list[FdtNode]:
        return [n for n in self.root.walk() if compat in self.compatible(n)]


def _number(cells: list[int]) -> int:
    v = 0
    for c in cells:
        v = (v << 32) | c
    return v


# -- the sections of the tree -------------------------------------------------------------------

def _cpus(r: _Reader) -> tuple[int, ...]:
    cpus = r.root.child("cpus")
    if cpus is None:
        r.fail(r.root, None, "no /cpus node")
    ac = r.u32(cpus, "#address-cells")
    if ac not in (1, 2):
        r.fail(cpus, "#address-cells", f"{ac}: must be 1 or 2 (MPIDR affinity)")
    if r.u32(cpus, "#size-cells") != 0:
        r.fail(cpus, "#size-cells", "must be 0")
    mpidrs: list[int] = []
    seen: dict[int, str] = {}
    for node in cpus.children:
        if r.strings(node, "device_type") != ["cpu"] or not r.available(node):
            continue
        if "reg" not in node.props:
            r.note(node, "reg", "missing (the MPIDR affinity of this CPU)")
            continue
        c = r.cells(node, "reg")
        if len(c) != ac:
            r.note(node, "reg", f"{len(c)} cells, but #address-cells of /cpus is {ac}")
            continue
        mpidr = _number(c)
        if mpidr & ~MPIDR_AFF_MASK:
            r.note(node, "reg", f"{mpidr:#x} is not an MPIDR affinity (Aff3 in bits 39:32, "
                   "Aff2..Aff0 in bits 23:0)")
        elif mpidr in seen:
            r.note(node, "reg", f"MPIDR {mpidr:#x} is also {seen[mpidr]}'s")
        else:
            seen[mpidr] = node.path
            mpidrs.append(mpidr)
    if not mpidrs:
        r.fail(cpus, None, "no available cpu node (device_type = \"cpu\")")
    if len(mpidrs) > MAX_CPUS:
        r.fail(cpus, None, f"{len(mpidrs)} CPUs: the model builds at most {MAX_CPUS}")
    return tuple(mpidrs)


def _memory(r: _Reader) -> list[tuple[int, int, str]]:
    """RAM ranges as (base, size, node path)."""
    ram: list[tuple[int, int, str]] = []
    for node in r.root.children:
        if r.strings(node, "device_type") == ["memory"] and r.available(node):
            for base, size in r.reg(node):
                if size == 0:
                    r.note(node, "reg", f"the range at {base:#x} is empty")
                else:
                    ram.append((base, size, node.path))
    if not ram:
        r.fail(r.root, None, "no memory node (device_type = \"memory\") with a non-empty reg")
    return ram


@dataclass
class _Gic:
    node: FdtNode
    desc: GicDescription
    regions: list[tuple[int, int]]
    stride: int
    direct_lpi: FdtNode | None
    its: list[tuple[FdtNode, ItsDescription]] = field(default_factory=list)
    v2m: list[tuple[FdtNode, V2mFrameDescription, tuple[int, int]]] = field(
        default_factory=list)
    """Each GICv2m frame with the SPI block the silicon gives it (first INTID, count)."""


def _gic(r: _Reader, hw: dict[str, Any]) -> _Gic:
    spis = int(hw.get("spis", MAX_SPI_INTID - 31))
    gics = r.find(GIC_COMPAT)
    if not gics:
        r.fail(r.root, None, f"no GICv3 node (compatible \"{GIC_COMPAT}\")")
    g = gics[0]
    for other in gics[1:]:
        r.note(other, "compatible", f"a second GICv3; {g.path} is the interrupt controller")
    if "interrupt-controller" not in g.props:
        r.note(g, "interrupt-controller", "missing")
    icells = r.try_u32(g, "#interrupt-cells")
    if icells is not None and icells != 3:
        r.note(g, "#interrupt-cells", "must be 3 (type, number, flags): PPI partitions "
               "(4 cells) are not modelled")
    if "#msi-cells" in g.props:
        r.note(g, "#msi-cells", "not allowed on the GIC node (msi-controller there means MBI, "
               "which takes no cells; Direct LPI is the arm,gic-v3-direct-lpi child node)")
    nregions = r.u32(g, "#redistributor-regions", 1)
    if not 1 <= nregions <= 4096:
        r.fail(g, "#redistributor-regions", f"{nregions}: must be 1..4096")
    regs = r.reg(g)
    if len(regs) < 1 + nregions:
        r.fail(g, "reg", f"{len(regs)} entries, but the GICD and #redistributor-regions = "
               f"{nregions} GICR region(s) need {1 + nregions}")
    dist_base, dist_size = regs[0]
    if dist_base % SZ_64K or dist_size < SZ_64K:
        r.note(g, "reg", f"GICD @{dist_base:#x} size {dist_size:#x}: the distributor is a "
               "64 KiB-aligned frame of at least 64 KiB")
    stride = 0
    if "redistributor-stride" in g.props:
        c = r.cells(g, "redistributor-stride")
        if len(c) != 2:
            r.fail(g, "redistributor-stride", f"{len(c)} cells, expected a 64-bit value (2)")
        stride = _number(c)
        if stride % SZ_64K or stride < RD_FRAMES:
            r.fail(g, "redistributor-stride", f"{stride:#x}: must be a multiple of 64 KiB, at "
                   f"least {RD_FRAMES:#x} (RD_base + SGI_base)")
    step = stride or RD_FRAMES
    regions: list[tuple[int, int]] = []
    for k, (base, size) in enumerate(regs[1:1 + nregions]):
        if base % SZ_64K or size == 0 or size % step:
            r.note(g, "reg", f"GICR region {k} @{base:#x} size {size:#x}: not a 64 KiB-aligned "
                   f"whole number of redistributors ({step:#x} each)")
        else:
            regions.append((base, size))
    mbi = _mbi_ranges(r, g, spis)
    dlpi = _direct_lpi_child(r, g)
    its_nodes, v2m_nodes = _children(r, g, ITS_COMPAT), _children(r, g, V2M_COMPAT)
    _child_ranges(r, g, its_nodes + v2m_nodes)
    its = _its_children(r, its_nodes, bool(hw.get("lpis", True)))
    v2m = _v2m_children(r, v2m_nodes, spis, mbi)
    desc = GicDescription(dist_base=dist_base, redist_regions=tuple(regions),
                          redist_stride=stride, msi_controller=bool(mbi), mbi_ranges=mbi,
                          direct_lpi=dlpi is not None, fwnode=Fwnode(g.path),
                          direct_lpi_fwnode=Fwnode(dlpi.path if dlpi else f"{g.path}/-"),
                          its=tuple(d for _n, d in its),
                          v2m_frames=tuple(d for _n, d, _spis in v2m))
    return _Gic(g, desc, regions, step, dlpi, its, v2m)


def _mbi_ranges(r: _Reader, g: FdtNode, spis: int) -> tuple[tuple[int, int], ...]:
    has_ctrl, has_ranges = "msi-controller" in g.props, "mbi-ranges" in g.props
    if has_ctrl and not has_ranges:
        r.note(g, "msi-controller", "on the GIC node it means MBI and needs mbi-ranges "
               "(Direct LPI is described by an arm,gic-v3-direct-lpi child node)")
    if has_ranges and not has_ctrl:
        r.note(g, "mbi-ranges", "given without msi-controller")
    if "mbi-alias" in g.props:
        r.note(g, "mbi-alias", "not modelled: the model's distributor has no alias frame "
               "for GICD_SETSPI_NSR (MBIs are written to the GICD frame itself)")
    if not (has_ctrl and has_ranges):
        return ()
    c = r.cells(g, "mbi-ranges")
    if not c or len(c) % 2:
        r.fail(g, "mbi-ranges", f"{len(c)} cells, not (first SPI, count) pairs")
    last_spi = 31 + spis
    out: list[tuple[int, int]] = []
    for first, count in zip(c[::2], c[1::2], strict=True):
        end = first + count - 1
        if count == 0 or first < 32 or end > last_spi:
            r.note(g, "mbi-ranges", f"<{first} {count}>: SPIs {first}..{end} are not within "
                   f"the implemented SPIs 32..{last_spi}")
            continue
        clash = next((f for f, n in out if first < f + n and f < first + count), None)
        if clash is not None:
            r.note(g, "mbi-ranges", f"<{first} {count}> overlaps the range starting at {clash}")
            continue
        out.append((first, count))
    return tuple(out)


def _direct_lpi_child(r: _Reader, g: FdtNode) -> FdtNode | None:
    found: FdtNode | None = None
    for child in g.children:
        if DIRECT_LPI_COMPAT not in r.compatible(child) or not r.available(child):
            continue
        if found is not None:
            r.note(child, "compatible", f"a second Direct LPI node; {found.path} is the first")
            continue
        ok = True
        if "msi-controller" not in child.props:
            r.note(child, "msi-controller", "missing: the Direct LPI node is an MSI controller")
            ok = False
        cells = r.try_u32(child, "#msi-cells")
        if cells is not None and cells != 0:
            r.note(child, "#msi-cells", f"{cells}: must be 0 (a Direct LPI MSI carries only "
                   "the INTID; there is no DeviceID)")
            ok = False
        elif cells is None:
            ok = False
        if "reg" in child.props:
            r.note(child, "reg", "not allowed: the MSI doorbells are the GIC's redistributors "
                   "(GICR_SETLPIR), already described by the GIC node")
            ok = False
        if ok:
            found = child
    return found


def _children(r: _Reader, g: FdtNode, compat: str) -> list[FdtNode]:
    """The available children of the GIC node with ``compatible`` ``compat``, in tree
    order (the order Linux probes them in)."""
    return [c for c in g.children if compat in r.compatible(c) and r.available(c)]


def _child_ranges(r: _Reader, g: FdtNode, children: list[FdtNode]) -> None:
    """The children's ``reg`` are read as CPU addresses: the GIC node needs an empty
    ``ranges`` (address translation through the GIC node is not modelled)."""
    if not children:
        return
    if "ranges" not in g.props:
        r.note(g, "ranges", f"missing: the reg of {children[0].path} cannot be translated to "
               "a CPU address without it (Linux's of_translate_address stops there); write "
               "an empty ranges")
    elif g.props["ranges"]:
        r.note(g, "ranges", "not empty: the model reads the reg of the GIC's ITS and GICv2m "
               "children as CPU addresses (write an empty ranges: a 1:1 mapping)")


def _one_region(r: _Reader, node: FdtNode, what: str) -> tuple[int, int]:
    regs = r.reg(node)
    if len(regs) != 1:
        r.fail(node, "reg", f"{len(regs)} entries: {what} takes one region")
    return regs[0]


def _its_children(r: _Reader, nodes: list[FdtNode],
                  lpis: bool) -> list[tuple[FdtNode, ItsDescription]]:
    """The ``arm,gic-v3-its`` children (Linux ``its_of_probe``), each checked."""
    out: list[tuple[FdtNode, ItsDescription]] = []
    for k, node in enumerate(nodes):
        if k == MAX_ITS:
            r.note(node, "compatible", f"ITS number {k + 1}: the model builds at most "
                   f"{MAX_ITS}")
            break
        ok = True
        if "msi-controller" not in node.props:
            r.note(node, "msi-controller", "missing: an ITS is an MSI controller (Linux ignores "
                   "an ITS node without it)")
            ok = False
        cells = r.try_u32(node, "#msi-cells")
        if cells is not None and cells != 1:
            r.note(node, "#msi-cells", f"{cells}: must be 1 (the msi-specifier is the "
                   "DeviceID)")
        if cells != 1:
            ok = False
        region = r._try(partial(_one_region, r, node, "an ITS"))
        if region is None:
            continue
        base, size = region
        if base % SZ_64K or size != ITS_SIZE:
            r.note(node, "reg", f"ITS @{base:#x} size {size:#x}: an ITS is a 64 KiB-aligned "
                   f"{ITS_SIZE:#x}-byte region (ITS_base control frame, then the translation "
                   "frame with GITS_TRANSLATER; the model's ITS has no GICv4 frames)")
            ok = False
        if not lpis and r.model is not None:
            r.note(r.model, "directlpi,lpis", f"0 (GICD_TYPER.LPIS = 0), but {node.path} is "
                   "an ITS: an ITS translates MSIs into LPIs, so the GIC must implement them")
            ok = False
        if ok:
            out.append((node, ItsDescription(base, Fwnode(node.path), translation_id=k)))
    return out


def _v2m_children(r: _Reader, nodes: list[FdtNode], spis: int, mbi: tuple[tuple[int, int], ...],
                  ) -> list[tuple[FdtNode, V2mFrameDescription, tuple[int, int]]]:
    """The ``arm,gic-v2m-frame`` children (Linux ``gicv2m_of_init``), each checked, with
    the SPIs the silicon gives each frame."""
    out: list[tuple[FdtNode, V2mFrameDescription, tuple[int, int]]] = []
    taken = [(f, n, "mbi-ranges") for f, n in mbi]
    for k, node in enumerate(nodes):
        ok = "msi-controller" in node.props
        if not ok:
            r.note(node, "msi-controller", "missing: a GICv2m frame is an MSI controller (Linux "
                   "ignores a frame without it)")
        if "#msi-cells" in node.props:
            r.note(node, "#msi-cells", "not part of the arm,gic-v2m-frame binding: a GICv2m "
                   "MSI carries only the SPI number (msi-parent = <&frame>, no specifier)")
            ok = False
        region = r._try(partial(_one_region, r, node, "a GICv2m frame"))
        spi_block = r._try(partial(_v2m_spis, r, node, k, spis))
        if region is None or spi_block is None:
            continue
        base, size = region
        if base % SZ_64K or size < SZ_4K:
            r.note(node, "reg", f"GICv2m frame @{base:#x} size {size:#x}: the frame is at least "
                   "4 KiB, and 64 KiB-aligned because the model maps each frame as a 64 KiB "
                   "region")
            ok = False
        (first, count), override = spi_block
        end = first + count - 1
        clash = next((c for c in taken if first < c[0] + c[1] and c[0] < first + count), None)
        if clash is not None:
            what = "" if override else f"absent, and the SPIs the model gives frame {k} "
            r.note(node, "arm,msi-base-spi", f"{what}SPIs {first}..{end} overlap {clash[2]}'s "
                   f"{clash[0]}..{clash[0] + clash[1] - 1} (an SPI has one MSI controller)")
            ok = False
        taken.append((first, count, node.path))
        if ok:
            desc = V2mFrameDescription(base, first if override else None,
                                       count if override else None, Fwnode(node.path),
                                       frame_id=k)
            out.append((node, desc, (first, count)))
    return out


def _v2m_spis(r: _Reader, node: FdtNode, k: int,
              spis: int) -> tuple[tuple[int, int], bool]:
    """A frame's SPI block and whether firmware overrides MSI_TYPER: ``arm,msi-base-spi``
    and ``arm,msi-num-spis`` (both, as Linux's ``gicv2m_init_one`` reads them), else the
    silicon's QEMU-virt layout (:func:`~directlpi.firmware.acpi.v2m_default_spis`)."""
    has_base, has_num = "arm,msi-base-spi" in node.props, "arm,msi-num-spis" in node.props
    last = 31 + spis
    if has_base != has_num:
        given, missing = (("arm,msi-base-spi", "arm,msi-num-spis") if has_base else
                          ("arm,msi-num-spis", "arm,msi-base-spi"))
        r.fail(node, given, f"given without {missing}: Linux overrides MSI_TYPER only with "
               "both")
    if has_base:
        first, count = r.u32(node, "arm,msi-base-spi"), r.u32(node, "arm,msi-num-spis")
        if count == 0 or first < 32 or first + count - 1 > last:
            r.fail(node, "arm,msi-base-spi", f"SPIs {first}..{first + count - 1} "
                   f"(arm,msi-base-spi {first}, arm,msi-num-spis {count}) are not within the "
                   f"implemented SPIs 32..{last}")
        return (first, count), True
    first, count = v2m_default_spis(k)
    if first + count - 1 > last:
        r.fail(node, "arm,msi-base-spi", f"absent, and the SPIs the model gives frame {k} "
               f"when firmware does not say ({first}..{first + count - 1}: QEMU virt's "
               f"{V2M_FIRST_SPI} + {V2M_SPIS} per frame) are not within the implemented SPIs "
               f"32..{last}: give arm,msi-base-spi and arm,msi-num-spis")
    return (first, count), False


def _vmbus(r: _Reader, gic: _Gic) -> tuple[FdtNode, VmbusDescription] | None:
    """The ``microsoft,vmbus`` node: the board is a Hyper-V-style guest (Linux finds the
    vPCI driver's parent domain through the node's interrupt parent)."""
    v = _first_available(r, VMBUS_COMPAT, "a second VMBus; {} is used")
    if v is None:
        return None
    parent = _interrupt_parent(r, v)
    if parent is not gic.node:
        what = parent.path if parent is not None else "no interrupt controller"
        r.note(v, "interrupt-parent", f"finds {what}, not the GICv3: \"Invalid firmware "
               "configuration for VMBus interrupts\" (pci-hyperv finds no parent domain)")
    if "ranges" not in v.props:
        r.note(v, "ranges", "missing: the vPCI bus under it needs CPU addresses (an empty "
               "ranges)")
    elif v.props["ranges"]:
        r.note(v, "ranges", "must be empty: the model reads the vPCI bus's addresses as CPU "
               "addresses (1:1)")
    return v, VmbusDescription(Fwnode(v.path), gic.desc.fwnode)


def _first_available(r: _Reader, compat: str, second: str) -> FdtNode | None:
    """The first available node of ``compat``; each further one is a problem, ``second``
    formatted with the first's path."""
    nodes = [n for n in r.find(compat) if _available_in_tree(r, n)]
    for other in nodes[1:]:
        r.note(other, "compatible", second.format(nodes[0].path))
    return nodes[0] if nodes else None


def _available_in_tree(r: _Reader, node: FdtNode) -> bool:
    """The node and every ancestor available (Linux populates no child of a disabled
    node)."""
    n = node
    while True:
        if not r.available(n):
            return False
        if n is r.root:
            return True
        n = r.parent(n)


def _interrupt_parent(r: _Reader, node: FdtNode) -> FdtNode | None:
    """``of_irq_find_parent``: follow ``interrupt-parent`` (or, without it, the tree
    parent) until a node with ``#interrupt-cells``; None if there is none."""
    child = node
    for _ in range(len(r.parents) + 2):             # a phandle loop ends here
        p: FdtNode | None
        if "interrupt-parent" in child.props:
            c = r._try(partial(r.cells, child, "interrupt-parent"))
            p = r.phandles.get(c[0]) if c else None
        else:
            p = None if child is r.root else r.parent(child)
        if p is None or "#interrupt-cells" in p.props:
            return p
        child = p
    return None


def _vpci_msi(r: _Reader, h: FdtNode,
              vmbus: VmbusDescription) -> tuple[Fwnode | None, tuple[MsiRoute, ...]]:
    """A host bridge under the VMBus is a vPCI bus: its MSIs are the vPCI driver's (guest
    SPIs the host routes), so it names no MSI controller."""
    for prop in ("msi-parent", "msi-map"):
        if prop in h.props:
            r.fail(h, prop, "a vPCI bus under the VMBus names no MSI controller: its MSIs "
                   "are pci-hyperv's (guest SPIs the host routes)")
    return vmbus.fwnode, ()


def _pci(r: _Reader, gic: _Gic, vmbus: tuple[FdtNode, VmbusDescription] | None = None
         ) -> tuple[PciHostDescription, FdtNode] | None:
    """The host bridge's description and its node."""
    h = _first_available(r, ECAM_COMPAT, "a second PCI host bridge: the model has one ({})")
    if h is None:
        return None
    if r.strings(h, "device_type") != ["pci"]:
        r.note(h, "device_type", "must be \"pci\"")
    if r.u32(h, "#address-cells") != 3 or r.u32(h, "#size-cells") != 2:
        r.fail(h, "#address-cells", "a PCI bus has #address-cells = 3 and #size-cells = 2")
    # The sections below are independent: each one's problem is recorded and the others
    # are still checked; the host is described only if none has one.
    ecam = r._try(lambda: _pci_ecam(r, h))
    buses = r._try(lambda: _pci_bus_range(r, h, None if ecam is None else ecam[1]))
    mem = r._try(lambda: _pci_mem_window(r, h))
    segment = r.try_u32(h, "linux,pci-domain", 0)
    if vmbus is not None and r.parent(h) is vmbus[0]:
        msi = r._try(lambda: _vpci_msi(r, h, vmbus[1]))
    else:
        msi = r._try(lambda: _pci_msi(r, h, gic))
    mask = r.try_u32(h, "msi-map-mask", 0xFFFF_FFFF)
    if ecam is None or buses is None or mem is None or segment is None or msi is None \
            or mask is None:
        raise _Skip
    (ecam_base, ecam_size), (bus_start, bus_end), (msi_parent, msi_map) = ecam, buses, msi
    return PciHostDescription(ecam_base=ecam_base, ecam_size=ecam_size, mem_base=mem[0],
                              mem_size=mem[1], bus_start=bus_start, bus_end=bus_end,
                              segment=segment, msi_parent=msi_parent, msi_map=msi_map,
                              msi_map_mask=mask), h


def _pci_ecam(r: _Reader, h: FdtNode) -> tuple[int, int]:
    regs = r.reg(h)
    if len(regs) != 1:
        r.fail(h, "reg", f"{len(regs)} entries: the ECAM host takes one (config space)")
    ecam_base, ecam_size = regs[0]
    if ecam_base % SZ_1M or ecam_size < SZ_1M or ecam_size % SZ_1M or ecam_size > 256 * SZ_1M:
        r.fail(h, "reg", f"ECAM @{ecam_base:#x} size {ecam_size:#x}: must be 1 MiB-aligned, "
               "1 MiB per bus, at most 256 buses")
    return ecam_base, ecam_size


def _pci_bus_range(r: _Reader, h: FdtNode, ecam_size: int | None) -> tuple[int, int]:
    """``bus-range``; checked against the ECAM size when ``reg`` is usable."""
    bus_start, bus_end = 0, 255
    if "bus-range" in h.props:
        c = r.cells(h, "bus-range")
        if len(c) != 2 or c[0] > c[1] or c[1] > 255:
            r.fail(h, "bus-range", f"{c}: must be <first last> with first <= last <= 255")
        bus_start, bus_end = c
    if bus_start != 0:
        r.fail(h, "bus-range", f"starts at bus {bus_start}: the model's host bridge starts at 0")
    if ecam_size is not None and (bus_end + 1) * SZ_1M > ecam_size:
        r.fail(h, "bus-range", f"buses {bus_start}..{bus_end} need {(bus_end + 1) * SZ_1M:#x} "
               f"bytes of ECAM, reg gives {ecam_size:#x}")
    return bus_start, bus_end


def _pci_mem_window(r: _Reader, h: FdtNode) -> tuple[int, int]:
    if "ranges" not in h.props:
        r.fail(h, "ranges", "missing: the host bridge needs a memory window")
    pac = r.address_cells(r.parent(h))
    width = 3 + pac + 2
    c = r.cells(h, "ranges")
    if not c or len(c) % width:
        r.fail(h, "ranges", f"{len(c)} cells, not a multiple of {width} (3 PCI address cells, "
               f"{pac} CPU address cells, 2 size cells)")
    for i in range(0, len(c), width):
        space = (c[i] >> 24) & 3
        pci_addr = _number(c[i + 1:i + 3])
        cpu_addr = _number(c[i + 3:i + 3 + pac])
        size = _number(c[i + 3 + pac:i + width])
        if space == PCI_SPACE_MEM32:
            if pci_addr != cpu_addr:
                r.fail(h, "ranges", f"memory window PCI {pci_addr:#x} -> CPU {cpu_addr:#x}: "
                       "the model maps PCI memory 1:1")
            if size == 0 or cpu_addr + size > 1 << 32:
                r.fail(h, "ranges", f"32-bit memory window @{cpu_addr:#x} size {size:#x} "
                       "does not fit below 4 GiB")
            return cpu_addr, size
    r.fail(h, "ranges", "no 32-bit memory window (space code 0b10): BARs need one")


@dataclass(frozen=True)
class _MsiTarget:
    """An MSI controller a host bridge names, as Linux finds its domain."""

    node: FdtNode
    fwnode: Fwnode
    kind: str
    """``"MBI"``, ``"Direct LPI"``, ``"ITS"`` or ``"GICv2m"``."""
    cells: int = 0
    """Its ``#msi-cells``: 1 for an ITS (the DeviceID), 0 for the others."""


def _msi_target(r: _Reader, h: FdtNode, prop: str, phandle: int, gic: _Gic) -> _MsiTarget:
    """The MSI controller ``phandle`` (in ``prop`` of host bridge ``h``) names."""
    node = r.phandles.get(phandle)
    if node is None:
        r.fail(h, prop, f"phandle {phandle:#x} names no node")
    if node is gic.node:
        if not gic.desc.msi_controller:
            r.fail(h, prop, f"names {node.path}, which offers no MBIs (no msi-controller "
                   "with mbi-ranges)")
        return _MsiTarget(node, gic.desc.fwnode, "MBI")
    if gic.direct_lpi is not None and node is gic.direct_lpi:
        return _MsiTarget(node, gic.desc.direct_lpi_fwnode, "Direct LPI")
    its = next((d for n, d in gic.its if n is node), None)
    if its is not None:
        return _MsiTarget(node, its.fwnode, "ITS", cells=1)
    frames = [n for n, _d, _spis in gic.v2m]
    if frames and node is frames[0]:
        return _MsiTarget(node, gic.v2m[0][1].fwnode, "GICv2m")
    if any(node is n for n in frames):
        r.fail(h, prop, f"names {node.path}, a GICv2m frame other than the first: Linux "
               "registers one MSI domain for all the frames, under the first frame's node "
               f"({frames[0].path}); name that one")
    compat = r.compatible(node)
    if DIRECT_LPI_COMPAT in compat:
        r.fail(h, prop, f"names {node.path}, a Direct LPI node that cannot be used (its "
               "own problems are listed)")
    if (ITS_COMPAT in compat or V2M_COMPAT in compat) and r.parent(node) is gic.node:
        why = ("is disabled (status)" if not r.available(node) else
               "cannot be used (its own problems are listed)")
        r.fail(h, prop, f"names {node.path}, an MSI controller of the GIC that {why}")
    r.fail(h, prop, f"names {node.path}, which is not an MSI controller of this GIC")


def _pci_msi(r: _Reader, h: FdtNode,
             gic: _Gic) -> tuple[Fwnode | None, tuple[MsiRoute, ...]]:
    """``msi-parent`` / ``msi-map`` resolved to the GIC (MBI), the Direct LPI node, an
    ITS or the (first) GICv2m frame."""
    has_parent, has_map = "msi-parent" in h.props, "msi-map" in h.props
    if has_parent and has_map:
        r.fail(h, "msi-map", "given together with msi-parent: say it once (msi-map alone)")
    if has_parent:
        return _pci_msi_parent(r, h, gic), ()
    if not has_map:
        return None, ()
    c = r.cells(h, "msi-map")
    if not c or len(c) % 4:
        r.fail(h, "msi-map", f"{len(c)} cells, not <rid-base phandle msi-base length> entries")
    routes: list[MsiRoute] = []
    for i in range(0, len(c), 4):
        rid_base, phandle, msi_base, count = c[i:i + 4]
        n = i // 4
        t = _msi_target(r, h, "msi-map", phandle, gic)
        if not t.cells and msi_base != 0:
            whose = ("a GICv2m frame takes" if t.kind == "GICv2m" else
                     "both MSI controllers of the GIC take")
            r.fail(h, "msi-map", f"entry {n}: msi-base {msi_base:#x}: {whose} no msi-specifier "
                   "(no DeviceID): write 0")
        if count == 0 or rid_base + count > 0x1_0000:
            r.fail(h, "msi-map", f"entry {n}: RIDs {rid_base:#x}+{count:#x} are not a "
                   "non-empty range of 16-bit requester IDs")
        if t.cells and msi_base + count > 1 << DEVICE_ID_BITS:
            r.fail(h, "msi-map", f"entry {n}: msi-base {msi_base:#x}: DeviceIDs "
                   f"{msi_base:#x}+{count:#x} do not fit the {DEVICE_ID_BITS}-bit DeviceIDs of "
                   f"the model's ITS (GITS_TYPER.Devbits = {DEVICE_ID_BITS - 1})")
        clash = next((x for x in routes if rid_base < x.rid_base + x.count
                      and x.rid_base < rid_base + count), None)
        if clash is not None:
            r.fail(h, "msi-map", f"entry {n}: RIDs {rid_base:#x}+{count:#x} overlap "
                   f"RIDs {clash.rid_base:#x}+{clash.count:#x}")
        shared = next((x for x in routes if t.cells and x.parent is t.fwnode
                       and msi_base < x.msi_base + x.count
                       and x.msi_base < msi_base + count), None)
        if shared is not None:
            r.fail(h, "msi-map", f"entry {n}: DeviceIDs {msi_base:#x}+{count:#x} on "
                   f"{t.node.path} overlap those of RIDs {shared.rid_base:#x}+"
                   f"{shared.count:#x}: two requesters would share a DeviceID (and its ITT)")
        routes.append(MsiRoute(rid_base, count, t.fwnode, msi_base))
    return None, tuple(routes)


def _pci_msi_parent(r: _Reader, h: FdtNode, gic: _Gic) -> Fwnode:
    """``msi-parent``: one phandle and the msi-specifier its ``#msi-cells`` asks for (Linux
    ``of_msi_get_domain``); for an ITS the DeviceID is then the requester ID
    (``of_msi_map_id`` without an msi-map), so the specifier must be 0."""
    c = r.cells(h, "msi-parent")
    if not c:
        r.fail(h, "msi-parent", "empty: one phandle")
    t = _msi_target(r, h, "msi-parent", c[0], gic)
    if len(c) != 1 + t.cells:
        r.fail(h, "msi-parent", (
            f"{len(c)} cell(s): {t.node.path} is an ITS (#msi-cells = <1>): write <&its 0> "
            "(Linux's of_msi_get_domain finds no MSI domain without the specifier cell)"
            if t.cells else f"{len(c)} cells: one phandle ({t.kind}, like every MSI "
            "controller of the GIC but an ITS, takes #msi-cells = 0)"))
    if t.cells and c[1] != 0:
        r.fail(h, "msi-parent", f"msi-specifier {c[1]:#x}: Linux ignores it for PCI (without "
               "an msi-map the DeviceID is the requester ID, of_msi_map_id): write 0, or an "
               "msi-map to offset the DeviceIDs")
    return t.fwnode


def _model(r: _Reader, ncpus: int) -> dict[str, Any]:
    """The silicon options of the ``directlpi,hardware-model`` node."""
    nodes = r.find(MODEL_COMPAT)
    if not nodes:
        return {}
    m = r.model = nodes[0]
    for other in nodes[1:]:
        r.note(other, "compatible", f"a second hardware-model node; {m.path} is used")
    hw: dict[str, Any] = {}
    for prop, key in (("directlpi,lpi-id-bits", "lpi_id_bits"), ("directlpi,spis", "spis")):
        if prop in m.props:
            hw[key] = r.u32(m, prop)
    if "directlpi,direct-lpi" in m.props:
        flags = r.cells(m, "directlpi,direct-lpi")
        if len(flags) not in (1, ncpus) or any(f > 1 for f in flags):
            r.fail(m, "directlpi,direct-lpi", f"{len(flags)} cells: one 0/1 flag for every RD, "
                   f"or one per CPU ({ncpus})")
        hw["direct_lpi"] = bool(flags[0]) if len(flags) == 1 else tuple(map(bool, flags))
    for prop, key in (("directlpi,mbis", "mbis"), ("directlpi,lpis", "lpis"),
                      ("directlpi,its-pta", "its_pta")):
        if prop in m.props:
            flag = r.u32(m, prop)
            if flag > 1:
                r.fail(m, prop, f"{flag}: a 0/1 flag")
            hw[key] = bool(flag)
    if "directlpi,gicr-regions" in m.props:
        c = r.cells(m, "directlpi,gicr-regions")
        if not c or len(c) % 3:
            r.fail(m, "directlpi,gicr-regions", f"{len(c)} cells, not <base-hi base-lo RD-count> "
                   "triples")
        hw["redist_regions"] = tuple((_number(c[i:i + 2]), c[i + 2]) for i in range(0, len(c), 3))
    return hw


def _overlaps(r: _Reader, spans: list[tuple[int, int, str]]) -> None:
    """One problem per span that starts inside an earlier one; spans are (base, size,
    "<node path>: reg: <what>")."""
    widest: tuple[int, int, str] | None = None
    for span in sorted(spans):
        base, size, what = span
        if widest is not None and base < widest[0] + widest[1]:
            b, sz, w = widest
            r.problems.append(f"{what} @{base:#x}+{size:#x} overlaps {w.replace(': reg:', '')} "
                              f"@{b:#x}+{sz:#x}")
        if widest is None or base + size > widest[0] + widest[1]:
            widest = span


def read_board(root: FdtNode, name: str | None = None) -> DtBoard:
    """The board ``root`` describes; :class:`DtError` lists every problem found."""
    r = _Reader(root)
    model = r._try(lambda: r.strings(root, "model"))
    cpus = r._try(lambda: _cpus(r))
    ram = r._try(lambda: _memory(r))
    hw = r._try(lambda: _model(r, len(cpus or ()))) or {}
    gic = r._try(lambda: _gic(r, hw))
    vmbus = r._try(lambda: _vmbus(r, gic)) if gic is not None else None
    found = r._try(lambda: _pci(r, gic, vmbus)) if gic is not None else None
    pci = found[0] if found else None
    # The address map and the RD count are checked with whatever the sections above could
    # read, so that a board with several independent problems gets all of them reported.
    spans = [(b, s, f"{path}: reg: RAM") for b, s, path in ram or ()]
    if gic is not None:
        spans.append((gic.desc.dist_base, SZ_64K, f"{gic.node.path}: reg: GICD"))
        spans += [(b, s, f"{gic.node.path}: reg: GICR region {k}")
                  for k, (b, s) in enumerate(gic.regions)]
        spans += [(d.base, ITS_SIZE, f"{n.path}: reg: ITS") for n, d in gic.its]
        spans += [(d.base, SZ_64K, f"{n.path}: reg: GICv2m frame (64 KiB as the model maps it)")
                  for n, d, _spis in gic.v2m]
    if found is not None:
        host = found[1].path
        spans += [(found[0].ecam_base, found[0].ecam_size, f"{host}: reg: ECAM"),
                  (found[0].mem_base, found[0].mem_size, f"{host}: ranges: memory window")]
    _overlaps(r, spans)
    capacity = 0
    if gic is not None:
        capacity = sum(s // gic.stride for _b, s in gic.regions)
        if cpus is not None and capacity < len(cpus):
            r.problems.append(f"{gic.node.path}: reg: the GICR regions hold {capacity} "
                              f"redistributor(s) for {len(cpus)} CPUs")
    if cpus is None or ram is None or gic is None or r.problems:
        raise DtError(r.problems or [f"{root.path}: unusable"])
    memory = tuple((b, s) for b, s, _path in ram)
    hardware: dict[str, Any] = {
        "cpus": len(cpus), "mpidrs": cpus, "gicd_base": gic.desc.dist_base,
        "redist_regions": tuple((b, s // gic.stride) for b, s in gic.regions),
        "redist_stride": gic.stride, "ram": memory}
    if gic.its:
        hardware["its"] = tuple(d.base for _n, d in gic.its)
    if gic.v2m:
        hardware["v2m_frames"] = tuple((d.base, *spis) for _n, d, spis in gic.v2m)
    if vmbus is not None:
        hardware["hv_vpci"] = True
    hardware.update(hw)
    title = name or (model[0] if model else "devicetree board")
    board = BoardDescription(cpus=cpus, memory=memory, gic=gic.desc, name=title,
                             pci_hosts=(pci,) if pci else (),
                             vmbus=vmbus[1] if vmbus is not None else None)
    notes = [f"{len(cpus)} CPU(s), GICD @{gic.desc.dist_base:#x}, {len(gic.regions)} GICR "
             f"region(s) ({capacity} RD frames)",
             "MSI providers described: " + (", ".join(
                 p for p, on in (("Direct LPI", gic.direct_lpi), ("MBI", gic.desc.msi_controller),
                                 (f"ITS ({len(gic.its)})", gic.its),
                                 (f"GICv2m ({len(gic.v2m)} frame(s))", gic.v2m),
                                 ("Hyper-V vPCI (guest SPIs)", vmbus))
                 if on) or "none")]
    if pci is not None:
        notes.append("PCI host bridge: " + _describe_msi(pci, gic.desc, board.vmbus))
    if vmbus is not None:
        shared = [f"{first}..{first + count - 1}" for _n, _d, (first, count) in gic.v2m
                  if first <= HV_VPCI_SPI_LAST and first + count - 1 >= HV_VPCI_SPI_FIRST]
        if shared:
            notes.append(f"GICv2m SPIs {', '.join(shared)} lie in pci-hyperv's range "
                         f"{HV_VPCI_SPI_FIRST}..{HV_VPCI_SPI_LAST}: the host refuses them to "
                         "vPCI vectors, and the driver skips them once refused")
    return DtBoard(board, hardware, pci, tuple(notes))


def _describe_msi(pci: PciHostDescription, gic: GicDescription,
                  vmbus: VmbusDescription | None = None) -> str:
    kinds = {id(gic.fwnode): "MBI", id(gic.direct_lpi_fwnode): "Direct LPI"}
    kinds.update({id(i.fwnode): f"ITS {i.fwnode.name}" for i in gic.its})
    if gic.v2m_frames:
        kinds[id(gic.v2m_frames[0].fwnode)] = "GICv2m"

    def route(m: MsiRoute) -> str:
        to = f"RIDs {m.rid_base:#x}+{m.count:#x} -> {kinds.get(id(m.parent), 'none')}"
        if gic.its_by_fwnode(m.parent) is not None:
            to += f" (DeviceIDs {m.msi_base:#x}+{m.count:#x})"
        return to
    if pci.msi_parent is None and not pci.msi_map:
        return "no MSI controller named (no msi-parent or msi-map)"
    if vmbus is not None and pci.msi_parent is vmbus.fwnode:
        return "a vPCI bus under the VMBus: MSIs are guest SPIs the host routes (pci-hyperv)"
    return ("MSIs by msi-map: " if pci.msi_map else "MSIs by msi-parent: ") + ", ".join(
        route(m) for m in pci.msi_routes())


def fdt_bytes(source: bytes | str | Path, include_dirs: Sequence[str | Path] = ()) -> bytes:
    """A DTB: given as bytes, or read from a devicetree file -- a DTB or a DTS, told apart
    by content (:func:`directlpi.firmware.files.classify`), a DTS compiled with dtc after
    the C preprocessor if it has directives.  ``include_dirs`` extend the preprocessor's
    include path (:func:`directlpi.firmware.fdt.include_path`)."""
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    return devicetree_blob(Path(source), include_dirs)


def load_board(source: bytes | str | Path,
               include_dirs: Sequence[str | Path] = ()) -> DtBoard:
    """Read and check the devicetree at ``source`` (DTB bytes, or a DTB or DTS path; see
    :func:`fdt_bytes` for ``include_dirs``).  A :class:`DtError` lists every problem; any
    other FirmwareError (unreadable, not a devicetree, dtc's or cpp's error) is one line
    naming the file."""
    where = "" if isinstance(source, bytes | bytearray) else f"{source}: "
    data = fdt_bytes(source, include_dirs)
    try:
        return read_board(parse_fdt(data))
    except DtError as e:
        raise DtError(e.problems, where) from None
    except FirmwareError as e:
        raise FirmwareError(where + str(e), e.errno) from None


def iter_problems(source: bytes | str | Path,
                  include_dirs: Sequence[str | Path] = ()) -> Iterator[str]:
    """Every problem of the devicetree at ``source``, one line each (nothing if valid)."""
    try:
        load_board(source, include_dirs)
    except DtError as e:
        yield from e.problems
    except FirmwareError as e:
        yield str(e)
