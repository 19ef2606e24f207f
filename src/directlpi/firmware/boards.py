"""The devicetrees shipped with directlpi (``directlpi/boards/``).

``default.dts`` is the embedded default board; ``default.dtb`` is its dtc output,
shipped so that running the default board needs no dtc (a test proves the two
agree).  :func:`default_tree` gives the default board for any CPU count the
way QEMU's virt machine writes its devicetree: one cpu node per CPU, and a
second GICR region at 256 GiB once the 123 redistributors of the first are used
up.
"""

from __future__ import annotations

import errno
import struct
from functools import cache
from pathlib import Path

from directlpi.errors import ConfigError
from directlpi.firmware.fdt import FdtNode, parse_fdt
from directlpi.hw.machine import MAX_CPUS, VIRT_GICR_REGIONS, default_mpidr

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"
DEFAULT_DTB = BOARDS_DIR / "default.dtb"
DEFAULT_CPUS = 8
HIGH_GICR_REGION = (VIRT_GICR_REGIONS[1][0], 0x400_0000)
"""QEMU virt's second GICR region: 64 MiB (512 RDs) at 256 GiB."""


def board_files() -> list[Path]:
    """Every shipped example board (``.dts``)."""
    return sorted(BOARDS_DIR.glob("*.dts"))


@cache
def _default_dtb() -> bytes:
    return DEFAULT_DTB.read_bytes()


def _cells(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def _string(s: str) -> bytes:
    return s.encode() + b"\0"


def default_tree(cpus: int = DEFAULT_CPUS) -> FdtNode:
    """The default board's devicetree with ``cpus`` CPUs (1..512)."""
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
        raise ConfigError(f"hardware option cpus: {cpus!r} is not a PE count in "
                          f"1..{MAX_CPUS}", errno.EINVAL)
    root = parse_fdt(_default_dtb())
    if cpus == DEFAULT_CPUS:
        return root
    root.props["model"] = _string(f"directlpi default board ({cpus} CPUs)")
    return with_cpus(root, cpus)


def with_cpus(root: FdtNode, cpus: int) -> FdtNode:
    """``root`` (a QEMU-virt-shaped tree: one ``/cpus`` node, the GIC node named
    ``interrupt-controller@...`` with one GICR region) rewritten for ``cpus`` CPUs, as
    QEMU writes it: a cpu node per CPU, and a second GICR region at 256 GiB past 123."""
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
        raise ConfigError(f"hardware option cpus: {cpus!r} is not a PE count in "
                          f"1..{MAX_CPUS}", errno.EINVAL)
    cpus_node = root.child("cpus")
    assert cpus_node is not None
    template = next(c for c in cpus_node.children if c.name.startswith("cpu@"))
    others = [c for c in cpus_node.children if not c.name.startswith("cpu@")]
    nodes = []
    for i in range(cpus):
        mpidr = default_mpidr(i)
        props = dict(template.props)
        props["reg"] = _cells(mpidr)
        nodes.append(FdtNode(f"cpu@{mpidr:x}", f"{cpus_node.path}/cpu@{mpidr:x}", props))
    cpus_node.children = nodes + others
    gic = next(n for n in root.children if n.name.startswith("interrupt-controller@"))
    low_rds = VIRT_GICR_REGIONS[0][1]
    if cpus > low_rds:
        base, size = HIGH_GICR_REGION
        gic.props["#redistributor-regions"] = _cells(2)
        gic.props["reg"] += _cells(base >> 32, base & 0xFFFF_FFFF, size >> 32, size & 0xFFFF_FFFF)
    return root
