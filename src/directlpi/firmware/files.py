"""What a firmware file is, decided by its content, the same way for every command.

:func:`classify` looks at the bytes, never the file name:

* the FDT magic ``0xd00dfeed`` (big-endian) -- a devicetree blob (DTB);
* the ACPI signature ``APIC`` -- a MADT; ``IORT`` -- an IORT; ``MCFG`` -- an MCFG;
* text whose first token, after blank lines, ``/* */`` and ``//`` comments and
  preprocessor lines (``#include``, ``#define``, ...), is ``/dts-v1/`` -- a
  devicetree source (DTS).  So is text that has an ``#include`` and then starts
  with a node (``/ {`` or ``&label {``): a board whose ``/dts-v1/;`` is in the
  ``.dtsi`` it includes;
* anything else is refused with one line, the same from ``directlpi check`` and
  from the board loader (``run --platform``, ``Platform.from_devicetree``).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from enum import Enum
from pathlib import Path

from directlpi.firmware.acpi import FirmwareError
from directlpi.firmware.fdt import FDT_MAGIC, FdtNode, compile_dts, parse_fdt


class FileKind(Enum):
    DTB = "devicetree blob (DTB)"
    DTS = "devicetree source (DTS)"
    MADT = "ACPI MADT (APIC)"
    IORT = "ACPI IORT"
    MCFG = "ACPI MCFG"


_FDT_MAGIC = FDT_MAGIC.to_bytes(4, "big")
_BOM = b"\xef\xbb\xbf"
NOT_FIRMWARE = "not a MADT (APIC), IORT, MCFG or devicetree (DTS or DTB)"


def _looks_like_dts(data: bytes) -> bool:
    pos, end = (3 if data.startswith(_BOM) else 0), len(data)
    included = False
    while pos < end:
        if data[pos:pos + 1].isspace():
            pos += 1
        elif data.startswith(b"/*", pos):
            close = data.find(b"*/", pos + 2)
            if close < 0:
                return False
            pos = close + 2
        elif data.startswith(b"//", pos) or data.startswith(b"#", pos):
            if data.startswith(b"#", pos):
                included |= data[pos + 1:pos + 16].lstrip(b" \t").startswith(b"include")
            nl = data.find(b"\n", pos)
            while nl > 0 and data[nl - 1:nl] == b"\\":      # a continued preprocessor line
                nl = data.find(b"\n", nl + 1)
            pos = end if nl < 0 else nl + 1
        else:
            rest = data[pos:pos + 8]
            return rest.startswith(b"/dts-v1/") or (included and rest[:1] in (b"/", b"&"))
    return False


def classify(data: bytes) -> FileKind | None:
    """What ``data`` is, by content; None if it is none of the firmware this model reads."""
    head = data[:4]
    if head == _FDT_MAGIC:
        return FileKind.DTB
    if head == b"APIC":
        return FileKind.MADT
    if head == b"IORT":
        return FileKind.IORT
    if head == b"MCFG":
        return FileKind.MCFG
    return FileKind.DTS if _looks_like_dts(data) else None


def read_firmware_file(path: Path) -> tuple[FileKind, bytes]:
    """The kind and bytes of a file; a FirmwareError naming it if it is unreadable or
    not firmware (:data:`NOT_FIRMWARE`)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FirmwareError(f"{path}: {e.strerror}", e.errno or errno.EIO) from None
    kind = classify(data)
    if kind is None:
        raise FirmwareError(f"{path}: {NOT_FIRMWARE}: starts with {data[:4]!r}", errno.EINVAL)
    return kind, data


def devicetree_blob(path: Path, include_dirs: Sequence[str | Path] = ()) -> bytes:
    """The DTB of a devicetree file: a DTB as it is, a DTS compiled (preprocessed first
    if it has directives; ``include_dirs`` extend the include path,
    :func:`directlpi.firmware.fdt.include_path`).  Errors name the file."""
    kind, data = read_firmware_file(path)
    if kind is FileKind.DTB:
        return data
    if kind is FileKind.DTS:
        return compile_dts(path, include_dirs, data)
    raise FirmwareError(f"{path}: an {kind.value}, not a devicetree (DTS or DTB)", errno.EINVAL)


def load_fdt(path: Path, include_dirs: Sequence[str | Path] = ()) -> FdtNode:
    """The root of a devicetree file, DTB or DTS (told apart by content,
    :func:`devicetree_blob`)."""
    data = devicetree_blob(path, include_dirs)
    try:
        return parse_fdt(data)
    except FirmwareError as e:
        raise FirmwareError(f"{path}: {e}", e.errno) from None
