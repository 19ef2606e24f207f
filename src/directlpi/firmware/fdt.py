"""Flattened devicetree blobs (DTB, devicetree specification v0.4 ch. 5): read, strictly.

A blob is a 40-byte big-endian header (magic 0xd00dfeed, total size, offsets of
the structure block, strings block and memory reservation map, version 17,
last compatible version 16, boot CPU, sizes of the strings and structure
blocks), then a structure block of 32-bit tokens -- FDT_BEGIN_NODE (name, NUL,
padded to 4), FDT_PROP (length, name offset, value padded to 4), FDT_END_NODE,
FDT_NOP, FDT_END.  ``parse_fdt`` checks every offset and length against the
blob and raises :class:`FirmwareError` naming the byte offset and what is wrong;
it never raises anything else.  ``.dts`` sources are compiled with ``dtc``, after the C
preprocessor (as the kernel build runs it) when they have a directive such as ``#include``.
"""

from __future__ import annotations

import errno
import re
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from directlpi.firmware.acpi import FirmwareError

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9
_HEADER = struct.Struct(">10I")
MAX_DEPTH = 64


@dataclass
class FdtNode:
    """One node: its name (``unit@addr``), properties (raw bytes) and children, in order."""

    name: str
    path: str
    props: dict[str, bytes] = field(default_factory=dict)
    children: list[FdtNode] = field(default_factory=list)

    def child(self, name: str) -> FdtNode | None:
        return next((c for c in self.children if c.name == name), None)

    def walk(self) -> list[FdtNode]:
        """This node and every node below it, depth first."""
        out = [self]
        for c in self.children:
            out += c.walk()
        return out


def _cstring(data: bytes, off: int, end: int, what: str) -> str:
    nul = data.find(b"\0", off, end)
    if nul < 0:
        raise FirmwareError(f"DTB: offset {off:#x}: {what} is not NUL-terminated")
    try:
        return data[off:nul].decode("ascii")
    except UnicodeDecodeError:
        raise FirmwareError(f"DTB: offset {off:#x}: {what} is not ASCII") from None


def parse_fdt(data: bytes) -> FdtNode:
    """The root node of a DTB."""
    if len(data) < _HEADER.size:
        raise FirmwareError(f"DTB: {len(data)} bytes, shorter than the 40-byte header")
    (magic, total, off_struct, off_strings, _rsv, version, last_comp, _boot, size_strings,
     size_struct) = _HEADER.unpack_from(data)
    if magic != FDT_MAGIC:
        raise FirmwareError(f"DTB: offset 0x0 magic: {magic:#010x}, expected {FDT_MAGIC:#x}")
    if total > len(data):
        raise FirmwareError(f"DTB: offset 0x4 totalsize: {total} but the blob has "
                            f"{len(data)} bytes (truncated?)")
    if last_comp > 17 or version < 16:
        raise FirmwareError(f"DTB: offset 0x14 version {version} (last compatible "
                            f"{last_comp}): only versions 16 and 17 are understood")
    for name, off, size, hoff in (("structure block", off_struct, size_struct, 0x8),
                                  ("strings block", off_strings, size_strings, 0xC)):
        if off < _HEADER.size or off + size > total:
            raise FirmwareError(f"DTB: offset {hoff:#x}: the {name} ({off:#x}+{size:#x}) lies "
                                f"outside the {total}-byte blob")
    strings_end = off_strings + size_strings
    end = off_struct + size_struct
    pos = off_struct
    stack: list[FdtNode] = []
    root: FdtNode | None = None
    while True:
        if pos + 4 > end:
            raise FirmwareError(f"DTB: offset {pos:#x}: the structure block ends without "
                                "FDT_END")
        (token,) = struct.unpack_from(">I", data, pos)
        at = pos
        pos += 4
        if token == FDT_BEGIN_NODE:
            name = _cstring(data, pos, end, "node name")
            pos = (pos + len(name) + 1 + 3) & ~3
            if root is not None and not stack:
                raise FirmwareError(f"DTB: offset {at:#x}: a second root node")
            if len(stack) >= MAX_DEPTH:
                raise FirmwareError(f"DTB: offset {at:#x}: nodes nested deeper than "
                                    f"{MAX_DEPTH}")
            parent = stack[-1] if stack else None
            path = "/" if parent is None else f"{parent.path.rstrip('/')}/{name}"
            node = FdtNode(name, path)
            if parent is None:
                root = node
            else:
                parent.children.append(node)
            stack.append(node)
        elif token == FDT_END_NODE:
            if not stack:
                raise FirmwareError(f"DTB: offset {at:#x}: FDT_END_NODE outside any node")
            stack.pop()
        elif token == FDT_PROP:
            if not stack:
                raise FirmwareError(f"DTB: offset {at:#x}: a property outside any node")
            if pos + 8 > end:
                raise FirmwareError(f"DTB: offset {at:#x}: property header runs past the "
                                    "structure block")
            length, nameoff = struct.unpack_from(">II", data, pos)
            pos += 8
            if pos + length > end:
                raise FirmwareError(f"DTB: offset {at:#x}: property value ({length} bytes) "
                                    "runs past the structure block")
            if off_strings + nameoff >= strings_end:
                raise FirmwareError(f"DTB: offset {at:#x}: property name offset {nameoff:#x} "
                                    "lies outside the strings block")
            pname = _cstring(data, off_strings + nameoff, strings_end, "property name")
            stack[-1].props[pname] = bytes(data[pos:pos + length])
            pos = (pos + length + 3) & ~3
        elif token == FDT_NOP:
            continue
        elif token == FDT_END:
            if stack:
                raise FirmwareError(f"DTB: offset {at:#x}: FDT_END inside node "
                                    f"{stack[-1].path}")
            if root is None:
                raise FirmwareError("DTB: the structure block holds no node")
            return root
        else:
            raise FirmwareError(f"DTB: offset {at:#x}: unknown structure token {token:#x}")


def build_fdt(root: FdtNode, boot_cpuid: int = 0) -> bytes:
    """The DTB (version 17) of a tree: the inverse of :func:`parse_fdt`."""
    strings = bytearray()
    offsets: dict[str, int] = {}
    struct_block = bytearray()

    def emit(node: FdtNode) -> None:
        name = node.name.encode() + b"\0"
        struct_block.extend(struct.pack(">I", FDT_BEGIN_NODE) + name)
        struct_block.extend(b"\0" * (-len(name) % 4))
        for pname, value in node.props.items():
            if pname not in offsets:
                offsets[pname] = len(strings)
                strings.extend(pname.encode() + b"\0")
            struct_block.extend(struct.pack(">III", FDT_PROP, len(value), offsets[pname]))
            struct_block.extend(value + b"\0" * (-len(value) % 4))
        for child in node.children:
            emit(child)
        struct_block.extend(struct.pack(">I", FDT_END_NODE))

    emit(root)
    struct_block.extend(struct.pack(">I", FDT_END))
    off_rsvmap = _HEADER.size
    off_struct = off_rsvmap + 16                    # one terminating (0, 0) reservation
    off_strings = off_struct + len(struct_block)
    total = off_strings + len(strings)
    header = _HEADER.pack(FDT_MAGIC, total, off_struct, off_strings, off_rsvmap, 17, 16,
                          boot_cpuid, len(strings), len(struct_block))
    return header + bytes(16) + bytes(struct_block) + bytes(strings)


DT_INCLUDE_DIR = Path(__file__).resolve().parent.parent / "boards" / "include"
"""The dt-bindings headers shipped with directlpi (``dt-bindings/interrupt-controller/
arm-gic.h``, ``irq.h``): on the include path of every preprocessed source."""

_DIRECTIVE = re.compile(
    rb"^[ \t]*#[ \t]*(?:include|define|undef|if|ifdef|ifndef|elif|else|endif|error|warning|"
    rb"pragma|line)(?![\w,.+#?-])", re.MULTILINE)
"""A C preprocessor directive at the start of a line -- and not a property such as
``#address-cells``, whose name may also start with ``#``."""
_CPP_ERROR = re.compile(r"^(.+?):(\d+):(?:\d+:)? (?:fatal error|error): (.*)$")
_DTC_ERROR = re.compile(r"^(?:Error|ERROR|FATAL ERROR)(?: \([\w-]+\))?: "
                        r"(\S+?:\d+[\d.\-]*):? (.*)$")
_LOCATED = re.compile(r"^\S+?:\d+[\d.\-]*: ")


def needs_cpp(source: bytes) -> bool:
    """Whether a devicetree source has a preprocessor directive (``#include``, ``#define``,
    ...).  Sources without one are given to dtc as they are (no cpp needed, and faster)."""
    return _DIRECTIVE.search(source) is not None


def include_path(path: Path, include_dirs: Sequence[str | Path] = ()) -> list[Path]:
    """Where ``#include <...>`` and ``/include/`` look, in order: the source's directory,
    the caller's directories, then the shipped :data:`DT_INCLUDE_DIR` (so a caller's
    kernel ``include/`` tree overrides the project's few headers)."""
    return [path.parent, *map(Path, include_dirs), DT_INCLUDE_DIR]


def preprocess_dts(path: Path, include_dirs: Sequence[str | Path] = ()) -> bytes:
    """The source after the C preprocessor, as the kernel build runs it (``cpp -nostdinc
    -undef -D__DTS__ -x assembler-with-cpp -I ...``).  Its line markers keep dtc's
    locations pointing into the user's files.  cpp's first error becomes a one-line
    FirmwareError naming the file and line."""
    cpp = shutil.which("cpp")
    if cpp is None:
        raise FirmwareError(f"{path}: uses the C preprocessor (#include or #define), but cpp "
                            "is not installed: run ./bootstrap (Debian cpp)")
    dirs = include_path(path, include_dirs)
    argv = [cpp, "-nostdinc", "-undef", "-D__DTS__", "-x", "assembler-with-cpp"]
    for d in dirs:
        argv += ["-I", str(d)]
    out = subprocess.run([*argv, str(path)], capture_output=True, check=False)
    if out.returncode == 0:
        return out.stdout
    lines = out.stderr.decode(errors="replace").splitlines()
    for ln in lines:
        m = _CPP_ERROR.match(ln)
        if m is not None:
            where, line, why = m.groups()
            if why.endswith("No such file or directory"):
                why += " (include path: " + ", ".join(map(str, dirs)) + ")"
            raise FirmwareError(f"{where}:{line}: {why}")
    first = next((ln for ln in lines if ln.strip()), f"exited with {out.returncode}")
    raise FirmwareError(f"{path}: cpp: {first}")


def _dtc_message(path: Path, line: str) -> str:
    """dtc's ``Error: file:3.9-10 syntax error`` as ``file:3.9-10: syntax error``; a
    message without a location is given the file's name."""
    m = _DTC_ERROR.match(line)
    if m is not None:
        return f"{m[1]}: {m[2]}"
    return line if _LOCATED.match(line) else f"{path}: {line}"


def compile_dts(path: Path, include_dirs: Sequence[str | Path] = (),
                text: bytes | None = None) -> bytes:
    """``dtc -I dts -O dtb`` of a source file, after the C preprocessor if it has a
    directive (:func:`needs_cpp`).  The first error, which names the file (and line when
    dtc or cpp knows it), becomes a one-line FirmwareError.  ``text``: the file's bytes,
    when the caller has read them already."""
    if text is None:
        try:
            text = path.read_bytes()
        except OSError as e:
            raise FirmwareError(f"{path}: {e.strerror}", e.errno or errno.EIO) from None
    dtc = shutil.which("dtc")
    if dtc is None:
        raise FirmwareError(f"{path}: dtc (Debian device-tree-compiler) is needed to read "
                            ".dts files: run ./bootstrap")
    argv = [dtc, "-q", "-I", "dts", "-O", "dtb", "-o", "-"]
    for d in include_path(path, include_dirs):
        argv += ["-i", str(d)]
    if needs_cpp(text):
        out = subprocess.run([*argv, "-"], input=preprocess_dts(path, include_dirs),
                             capture_output=True, check=False)
    else:
        out = subprocess.run([*argv, str(path)], capture_output=True, check=False)
    if out.returncode != 0:
        first = next((ln for ln in out.stderr.decode(errors="replace").splitlines()
                      if ln.strip()), f"dtc exited with {out.returncode}")
        raise FirmwareError(_dtc_message(path, first))
    return out.stdout
