"""``directlpi check``: validate firmware descriptions, one line per problem.

Files are recognised by content, by the classifier every command uses
(:func:`directlpi.firmware.files.classify`): binary ACPI tables by their signature (a
MADT, ``APIC``, and an IORT), devicetree blobs by their magic, devicetree sources by
``/dts-v1/`` (compiled with dtc, after the C preprocessor if they have directives).
A devicetree is read by the board loader (every problem, named by node and
property) and validated against the project's dt-schema bindings when dtschema is
installed.  Booting the described board to cross-check it against the hardware is
the CLI's part (this layer cannot build platforms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from directlpi.firmware.acpi import (
    FirmwareError,
    Iort,
    Madt,
    parse_madt,
    parse_mcfg,
    read_iort,
)
from directlpi.firmware.devicetree import DtError, read_board
from directlpi.firmware.fdt import parse_fdt
from directlpi.firmware.files import FileKind, devicetree_blob, read_firmware_file
from directlpi.firmware.schema import SchemaUnavailable, schema_problems


@dataclass
class CheckResult:
    """What the files say and what is wrong with them."""

    problems: list[str] = field(default_factory=list)
    madt: tuple[Path, bytes] | None = None
    iort: tuple[Path, bytes] | None = None
    mcfg: tuple[Path, bytes] | None = None
    devicetrees: list[tuple[Path, bytes]] = field(default_factory=list)
    """Valid devicetrees (as DTB), for the hardware cross-check."""
    summary: list[str] = field(default_factory=list)


def _describe_madt(path: Path, m: Madt) -> str:
    rds = (f"{len(m.redist_regions)} redistributor(s) named in the GICCs (GICR Base Address)"
           if m.gicr_in_gicc else f"{len(m.redist_regions)} GICR region(s)")
    extra = "".join(f", ITS {i.translation_id} @{i.base:#x}" for i in m.its)
    extra += "".join(f", MSI frame {f.frame_id} @{f.base:#x}" for f in m.v2m_frames)
    return f"{path}: MADT: {len(m.cpus)} CPU(s), GICD @{m.dist_base:#x}, {rds}{extra}"


def _describe_iort(path: Path, iort: Iort) -> str:
    parts = []
    if iort.direct_lpi:
        spans = ", ".join(f"segment {r.segment} RIDs {r.rid_base:#x}+{r.count:#x}"
                          for r in iort.direct_lpi)
        parts.append(f"Direct LPI (PROPOSED node) for {spans}")
    for m in iort.mbi:
        parts.append(f"MBI (PROPOSED node, SPIs {m.spi_base}+{m.spi_count}) for segment "
                     f"{m.segment} RIDs {m.rid_base:#x}+{m.count:#x}")
    for r in iort.its:
        parts.append(f"ITS {r.its_id} for segment {r.segment} RIDs {r.rid_base:#x}+"
                     f"{r.count:#x} (DeviceIDs from {r.output_base:#x})")
    for c in iort.components:
        to = {"direct-lpi": "Direct LPI (PROPOSED node)",
              "mbi": f"MBI (PROPOSED node, SPIs {c.spis[0]}+{c.spis[1]})",
              "its": f"ITS {c.its_id} (DeviceID {c.device_id:#x})"}[c.target]
        parts.append(f"{to} for named component {c.path}")
    if not parts:
        return f"{path}: IORT: no requester ID or named component is routed to an MSI controller"
    return f"{path}: IORT: " + "; ".join(parts)


def check_files(paths: list[Path], include_dirs: Sequence[str | Path] = ()) -> CheckResult:
    """Read and validate every file; collect one line per problem.  ``include_dirs``
    extend the include path of preprocessed devicetree sources."""
    res = CheckResult()
    for path in paths:
        try:
            kind, data = read_firmware_file(path)
        except FirmwareError as e:          # names the file: unreadable, or not firmware
            res.problems.append(str(e))
            continue
        try:
            if kind is FileKind.MADT:
                res.summary.append(_describe_madt(path, parse_madt(data)))
                res.madt = (path, data)
            elif kind is FileKind.IORT:
                res.summary.append(_describe_iort(path, read_iort(data)))
                res.iort = (path, data)
            elif kind is FileKind.MCFG:
                entries = parse_mcfg(data)
                res.summary.append(f"{path}: MCFG: " + ("; ".join(
                    f"segment {e.segment} buses {e.bus_start}..{e.bus_end} ECAM @"
                    f"{e.window[0]:#x}+{e.window[1]:#x}" for e in entries) or "no allocation"))
                res.mcfg = (path, data)
            else:
                _check_devicetree(res, path, include_dirs)
        except FirmwareError as e:
            res.problems.append(f"{path}: {e}")
    for other in (res.iort, res.mcfg):
        if other is not None and res.madt is None and not res.problems:
            res.problems.append(f"{other[0]}: {'an IORT' if other is res.iort else 'an MCFG'} "
                                "needs the MADT that describes the GIC")
    return res


def _check_devicetree(res: CheckResult, path: Path, include_dirs: Sequence[str | Path]) -> None:
    """The loader's problems and the schema's, all of them, one line each."""
    try:
        dtb = devicetree_blob(path, include_dirs)
    except FirmwareError as e:              # dtc's or cpp's error: already names the file
        res.problems.append(str(e))
        return
    try:
        notes = read_board(parse_fdt(dtb)).notes
    except DtError as e:
        res.problems += [f"{path}: {p}" for p in e.problems]
        notes = ()
    except FirmwareError as e:
        res.problems.append(f"{path}: {e}")
        return
    try:
        res.problems += [f"{path}: {p}" for p in schema_problems(dtb)]
    except SchemaUnavailable as e:
        res.summary.append(f"{path}: {e}")
    except Exception as e:  # dtschema is third-party code on hostile input: never a traceback
        why = (f"a phandle that names no node ({e.args[0]:#x})"
               if isinstance(e, KeyError) and e.args and isinstance(e.args[0], int)
               else f"{type(e).__name__}: {e}")
        res.problems.append(f"{path}: schema: dtschema cannot decode this tree ({why})")
    res.summary += [f"{path}: {n}" for n in notes]
    if notes:
        res.devicetrees.append((path, dtb))
