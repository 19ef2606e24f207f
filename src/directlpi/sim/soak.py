"""The soak campaign (``directlpi soak``): fuzzed MMIO, mutated firmware, random whole-stack
operations with injected faults, every finding shrunk to a reproducer file.

Three parts, each cut into *units* -- a fresh platform and a seeded batch of operations,
whose seed is derived from the campaign seed, the part (and board) and the unit's
index, so any unit can be run again alone:

``mmio``
    Accesses to every frame (GICD, every RD_base and SGI_base, ITS control and
    translation frames and GICv2m frames when the board has them, and unmapped space),
    any offset, sizes 1/2/4/8 and illegal ones, aligned or not, on bare, booted and
    strict platforms.  After each burst: the ID registers read what they read before,
    every read returned a value of its width (0 for an illegal size), and each PE's
    ICC_HPPIR1_EL1 names 1023 or an interrupt that is pending.  Under ``strict`` an
    :class:`~directlpi.errors.ArchitectureViolation` is the documented answer to a bad
    access; anything else escaping is a finding.
``firmware``
    Devicetree blobs (tree-aware mutations of the shipped boards: nodes and properties
    deleted, duplicated, renamed, values replaced, cut or grown; and raw byte flips)
    and ACPI MADT + IORT sets (byte and field mutations, checksums fixed or not),
    through the readers ``directlpi check`` uses and ``Platform.from_board`` /
    ``Platform.from_acpi``, a fraction booted.  Every input must end in a documented
    error (a :class:`~directlpi.errors.DirectLPIError`: FirmwareError, DtError,
    ConfigError, KernelError) with a one-line message, or in a platform, within
    :data:`INPUT_TIME_LIMIT` seconds.
``stack``
    :class:`~directlpi.sim.stress.StackExerciser` on every board of :data:`BOARDS`,
    posted writes, ``lpis_clearable`` and the injected faults switched on at random
    (:func:`draw_faults`); the invariant checker after every operation and the
    spoofing audit after every batch of :data:`BATCH` operations.

A finding is shrunk (delta debugging over the unit's operations, :func:`shrink`) and
written as JSON (:func:`write_reproducer`) that :func:`replay` plays again.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from types import FrameType
from typing import Any

from directlpi.errors import ArchitectureViolation, DirectLPIError
from directlpi.firmware.acpi import (
    Route,
    build_iort,
    build_madt,
    checksum_fix,
    direct_lpi_routes,
    its_routes,
    parse_madt,
    read_iort,
)
from directlpi.firmware.boards import BOARDS_DIR, board_files
from directlpi.firmware.devicetree import DtBoard, fdt_bytes, read_board
from directlpi.firmware.fdt import FdtNode, build_fdt, parse_fdt
from directlpi.hw.memory import PA_LIMIT
from directlpi.hw.regs import (
    GICD,
    GICR,
    GITS,
    ITS_TRANSLATION_OFFSET,
    SGI_BASE_OFFSET,
    registers,
)
from directlpi.platform import Platform
from directlpi.sim.stress import BOARD_FILES, Finding, Op, StackExerciser, check_op

SCHEMA_VERSION = 1
PARTS = ("mmio", "firmware", "stack")
BOARDS = ("direct-lpi", "mbi", "its", "gicv2m", "spi-pv")
"""The boards the stack part runs on (every MSI route the project has)."""
UNIT_OPS = {"mmio": 20_000, "firmware": 500, "stack": 1000}
"""Operations per unit: MMIO accesses, firmware inputs, whole-stack operations."""
BATCH = 50
"""Whole-stack operations between two end-of-run checks and spoofing audits."""
BURST = 100
"""MMIO accesses between two state-consistency checks."""
INPUT_TIME_LIMIT = 10.0
"""Seconds one firmware input (read, build, perhaps boot) may take."""
SHRINK_SECONDS = 60.0
"""Wall time the minimiser may spend on one finding."""
BOOT_FRACTION = 0.05
"""Share of firmware inputs that built a platform which are also booted."""


# -- faults ------------------------------------------------------------------------------------

def draw_faults(rng: random.Random, board: str) -> dict[str, Any]:
    """Hardware fault options for one stack unit: each fault on with probability 1/3.

    ``syncr_stuck`` is drawn below the driver's poll limit (1000 reads) two times in
    three -- the driver must survive a slow GICR_SYNCR without a visible error -- and
    beyond it (3000 reads, or for ever) at a low rate otherwise: operations then fail
    with ETIMEDOUT, which must leave the stack consistent.  ``its_cmd_error`` only where
    there is an ITS."""
    faults: dict[str, Any] = {"fault_seed": rng.randrange(1 << 30)}
    if rng.random() < 1 / 3:
        faults["dma_drop"] = rng.choice((0.01, 0.05, 0.2))
    if rng.random() < 1 / 3:
        if rng.random() < 2 / 3:
            faults["syncr_stuck"] = rng.choice((1, 10, 100, 900))
            faults["syncr_stuck_rate"] = rng.choice((0.05, 0.5, 1.0))
        else:
            faults["syncr_stuck"] = rng.choice((3000, -1))
            faults["syncr_stuck_rate"] = rng.choice((0.002, 0.005, 0.02))
    if rng.random() < 1 / 3:
        faults["cache_refill"] = rng.choice((0.01, 0.1, 0.5))
    if rng.random() < 1 / 3:
        faults["stale_msi"] = rng.choice((1, 2, 5))
    if board == "its" and rng.random() < 1 / 3:
        faults["its_cmd_error"] = rng.choice((0.005, 0.02, 0.1))
    return faults


def unit_seed(seed: int, stream: str, index: int) -> int:
    """The seed of unit ``index`` of ``stream`` ("mmio", "firmware", "stack:<board>")."""
    return random.Random(f"{seed}:{stream}:{index}").getrandbits(48)


# -- results -------------------------------------------------------------------------------------

@dataclass
class UnitResult:
    """What one unit did and found."""

    stream: str
    index: int
    seed: int
    ops: int = 0
    seconds: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)


class _Hang(BaseException):
    """A firmware input outlasted INPUT_TIME_LIMIT (raised by the alarm; not an Exception,
    so that no handler in the model can swallow it)."""


def _error_key(exc: BaseException) -> str:
    """What identifies a failure for the minimiser: its type, and for an invariant
    violation the invariant's name."""
    name = type(exc).__name__
    if isinstance(exc, Finding):
        return f"{name}:{str(exc).split(':', 1)[0]}"
    return name


# -- the stack part ------------------------------------------------------------------------------

def _exerciser(spec: dict[str, Any]) -> StackExerciser:
    return StackExerciser(spec["board"], cpus=4, posted=spec["posted"], seed=spec["seed"],
                          clearable=spec["clearable"], faults=spec["faults"],
                          options=spec.get("options"))


def _play_stack(spec: dict[str, Any], ops: Sequence[Op]) -> StackExerciser:
    """Play ``ops`` on a fresh exerciser; a "run" operation is followed by the audit."""
    x = _exerciser(spec)
    for op in ops:
        x.apply(op)
        if op[0] == "run":
            x.audit()
    x.run()
    x.audit()
    return x


def stack_unit(board: str, seed: int, n: int) -> UnitResult:
    """``n`` random operations (plus a check every BATCH) on one fresh exerciser."""
    res = UnitResult(f"stack:{board}", 0, seed)
    rng = random.Random(seed)
    spec: dict[str, Any] = {"board": board, "posted": rng.random() < 0.5,
                            "clearable": rng.random() < 0.3,
            "seed": seed & 0xFFFF_FFFF, "faults": draw_faults(rng, board)}
    if rng.random() < 0.25:             # two Security states, the kernel Non-secure
        spec["options"] = {"security_states": 2, "scr_el3_fiq": rng.random() < 0.5}
        res.counts["option:security_states=2"] += 1
    for name in spec["faults"]:
        if name != "fault_seed":
            res.counts[f"fault:{name}"] += 1
    t0 = time.perf_counter()
    ops: list[Op] = []
    x: StackExerciser | None = None
    try:
        x = _exerciser(spec)
        for i in range(n):
            op = x.draw_op(rng)
            ops.append(op)
            x.apply(op)
            res.counts[f"op:{op[0]}"] += 1
            if i % BATCH == BATCH - 1:
                ops.append(("run",))
                x.apply(("run",))
                x.audit()
        x.run()
        x.audit()
    except Exception as exc:                    # a finding, whatever it is
        res.findings.append({"part": "stack", "board": board, "seed": seed,
                             "error": f"{type(exc).__name__}: {exc}", "key": _error_key(exc),
                             "spec": spec, "ops": [list(o) for o in ops]})
    res.ops = n
    res.seconds = time.perf_counter() - t0
    if x is not None:
        for key, count in x.checker.totals.items():
            res.counts[f"checker:{key}"] += count
        res.counts["spoofs_sent"] += x.spoofs_sent
        res.counts["spoofs_flagged"] += sum(1 for m in x.plat.spoofed_msis
                                            if not m.reason.startswith("injected fault"))
        for (what, err), count in x.refused.counts.items():
            res.counts[f"refused:{what}:{err}"] += count
    return res


# -- the MMIO part -------------------------------------------------------------------------------

MMIO_BOARDS = ("default", "its", "gicv2m")
MODES = ("bare", "booted", "strict")
_SIZES = (1, 2, 4, 8)
_ILLEGAL_SIZES = (0, 3, 5, 6, 16, -1)

Access = tuple[str, int, int, int]
"""("r" or "w", address, value (0 for a read), size)."""


def _mmio_platform(spec: dict[str, Any]) -> Platform:
    strict = spec["mode"] == "strict"
    if spec["board"] == "default":
        plat = Platform.default(cpus=4, strict=strict)
    else:
        plat = Platform.from_devicetree(BOARDS_DIR / BOARD_FILES[spec["board"]],
                                        strict=strict)
    if spec["mode"] == "booted":
        plat.boot()
    return plat


Frame = tuple[int, tuple[tuple[int, int], ...]]
"""A frame's base, and (offset, natural size) of every register element it declares."""


def _frames(plat: Platform) -> list[Frame]:
    """Every MMIO frame the machine has, with its registers."""
    bus = plat.bus
    m = plat.machine
    bases = [m.gicd_base]
    for cpu in range(plat.num_cpus):
        bases += [m.gicr_base(cpu), m.gicr_base(cpu) + SGI_BASE_OFFSET]
    for its in m.its:
        bases += [its.base, its.base + ITS_TRANSLATION_OFFSET]
    bases += [base for base, _first, _count in m.config.v2m_frames]
    out = []
    for base in bases:
        frame = bus.frame_at(base)
        regs = () if frame is None else tuple(
            (r.at(n), r.size) for r in registers(frame.REGISTERS) if r.offset >= 0
            for n in range(r.count))
        out.append((base, regs))
    return out


def _draw_access(rng: random.Random, frames: list[Frame]) -> Access:
    size = rng.choice(_SIZES) if rng.random() < 0.9 else rng.choice(_ILLEGAL_SIZES)
    r = rng.random()
    if r < 0.5:
        base, regs = rng.choice(frames)         # a declared register, natural size or not
        off, natural = rng.choice(regs) if regs else (0, 4)
        if rng.random() < 0.6:
            size = natural
        addr = base + off + (rng.choice((1, 2, 4)) if rng.random() < 0.05 else 0)
    elif r < 0.85:
        base = rng.choice(frames)[0]
        off = rng.randrange(0x10000)
        if rng.random() < 0.7 and size in _SIZES:
            off &= ~(size - 1)
        addr = base + off
    elif r < 0.9:
        addr = rng.choice(frames)[0] + 0x10000 - rng.randrange(1, 16)   # across a frame end
    elif r < 0.97:
        addr = rng.randrange(PA_LIMIT)                               # mostly unmapped
    else:
        addr = rng.choice((PA_LIMIT + rng.randrange(1 << 20), -rng.randrange(1, 1 << 12)))
    if rng.random() < 0.5:
        return ("r", addr, 0, size)
    value = rng.choice((rng.getrandbits(64), 0, (1 << 64) - 1, 1 << rng.randrange(64),
                        rng.getrandbits(32)))
    return ("w", addr, value, size)


def _id_registers(plat: Platform) -> dict[tuple[int, int], int]:
    """Registers whose value never changes: ID registers, TYPERs, IIDRs of every frame."""
    m = plat.machine
    regs = [(m.gicd_base + off, 4) for off in (GICD.TYPER.offset, GICD.IIDR.offset, 0xFFE8)]
    for cpu in range(plat.num_cpus):
        base = m.gicr_base(cpu)
        regs += [(base + GICR.TYPER.offset, 8), (base + GICR.IIDR.offset, 4),
                 (base + 0xFFE8, 4)]
    for its in m.its:
        regs += [(its.base + GITS.TYPER.offset, 8), (its.base + GITS.IIDR.offset, 4)]
    return {(a, s): plat.bus.read(a, s) for a, s in regs}


def _check_state(plat: Platform, ids: dict[tuple[int, int], int]) -> None:
    """Raise Finding unless the ID registers are unchanged and each PE's HPPIR names 1023
    or an interrupt pending on it."""
    for (addr, size), value in ids.items():
        now = plat.bus.read(addr, size)
        if now != value:
            raise Finding(f"mmio-state: the register at {addr:#x} read {value:#x} before the "
                          f"burst, {now:#x} after")
    gic = plat.machine.gic
    for cpu in range(plat.num_cpus):
        intid = plat.cpu(cpu).read_sysreg("ICC_HPPIR1_EL1")
        if intid >= 1020 and intid < 8192:
            continue
        rd = gic.redists[cpu]
        if intid >= 8192:
            pending = intid in rd.lpi_pending
        elif intid >= 32:
            word = plat.bus.read(plat.gicd_base + GICD.ISPENDR.offset + 4 * (intid // 32), 4)
            pending = bool(word >> (intid % 32) & 1)
        else:
            pending = bool(rd.sgi.pending >> intid & 1)
        if not pending:
            raise Finding(f"mmio-state: CPU{cpu}'s ICC_HPPIR1_EL1 names INTID {intid}, "
                          "which is not pending")


def _play_mmio(spec: dict[str, Any], accesses: Sequence[Access],
               counts: Counter[str] | None = None) -> None:
    """Play ``accesses`` on a fresh platform, checking after every BURST of them."""
    counts = Counter() if counts is None else counts
    plat = _mmio_platform(spec)
    ids = _id_registers(plat)
    bus = plat.bus
    for i, (kind, addr, value, size) in enumerate(accesses):
        try:
            if kind == "r":
                got = bus.read(addr, size)
                width = 8 * size if size in _SIZES else 0
                if not 0 <= got < 1 << width and not (width == 0 and got == 0):
                    raise Finding(f"mmio-range: a {size}-byte read at {addr:#x} returned "
                                  f"{got:#x}")
            else:
                bus.write(addr, value, size)
        except ArchitectureViolation:
            if spec["mode"] != "strict":
                raise
            counts["strict_refusals"] += 1
        if i % BURST == BURST - 1 or i == len(accesses) - 1:
            _check_state(plat, ids)
            counts["bursts"] += 1


def mmio_unit(seed: int, n: int) -> UnitResult:
    res = UnitResult("mmio", 0, seed)
    rng = random.Random(seed)
    spec = {"board": rng.choice(MMIO_BOARDS), "mode": rng.choice(MODES)}
    res.counts[f"platform:{spec['board']}:{spec['mode']}"] += 1
    t0 = time.perf_counter()
    frames = _frames(_mmio_platform(spec))
    accesses = [_draw_access(rng, frames) for _ in range(n)]
    try:
        _play_mmio(spec, accesses, res.counts)
    except Exception as exc:
        res.findings.append({"part": "mmio", "board": spec["board"], "seed": seed,
                             "error": f"{type(exc).__name__}: {exc}", "key": _error_key(exc),
                             "spec": spec, "ops": [list(a) for a in accesses]})
    res.ops = n
    res.seconds = time.perf_counter() - t0
    return res


# -- the firmware part ---------------------------------------------------------------------------

_BASE_CACHE: dict[str, Any] = {}


def _bases() -> dict[str, Any]:
    """The shipped boards as DTBs, and ACPI table sets built from some of them (once)."""
    if not _BASE_CACHE:
        blobs = {p.stem: fdt_bytes(p) for p in board_files()}
        acpi: list[tuple[bytes, bytes | None]] = []
        for name in ("default", "its", "mbi-and-direct-lpi"):
            board = read_board(parse_fdt(blobs[name])).board
            dl, _ = direct_lpi_routes(board)
            its, _ = its_routes(board)
            routes: list[Route] = [*dl, *its]
            acpi.append((build_madt(board), build_iort(routes) if routes else None))
        acpi.append((build_madt(Platform.default(cpus=8).board, gicr_in_gicc=True), None))
        _BASE_CACHE.update(blobs=blobs, acpi=acpi)
    return _BASE_CACHE


def _mutate_tree(rng: random.Random, root: FdtNode) -> None:
    nodes = root.walk()
    node = rng.choice(nodes)
    what = rng.randrange(7)
    if what == 0 and node is not root:
        parent = next(n for n in nodes if node in n.children)
        parent.children.remove(node)
    elif what == 1 and node.props:
        del node.props[rng.choice(sorted(node.props))]
    elif what == 2 and node.props:
        key = rng.choice(sorted(node.props))
        val = bytearray(node.props[key])
        if val and rng.random() < 0.6:                  # one cell (or byte) changed
            at = rng.randrange(0, len(val), 4 if len(val) % 4 == 0 else 1)
            cell = rng.choice((0, 1, 0xFFFFFFFF, rng.getrandbits(32),
                               int.from_bytes(val[at:at + 4].ljust(4, b"\0"), "big") + 1))
            val[at:at + 4] = (cell & 0xFFFFFFFF).to_bytes(4, "big")
        elif rng.random() < 0.5:
            val = val[:rng.randrange(len(val) + 1)]
        else:
            val += bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 4, 8))))
        node.props[key] = bytes(val)
    elif what == 3 and node is not root:
        parent = next(n for n in nodes if node in n.children)
        parent.children.append(FdtNode(node.name, node.path, dict(node.props),
                                       list(node.children)))
    elif what == 4:
        stem = node.name.split("@")[0]
        node.name = f"{stem}@{rng.getrandbits(rng.choice((4, 16, 40))):x}"
    else:
        key = rng.choice(("#address-cells", "#size-cells", "reg", "compatible", "phandle",
                          "msi-parent", "msi-map", "interrupts", "status", "ranges",
                          "#redistributor-regions", "redistributor-stride", "mbi-ranges"))
        value = rng.choice((b"", b"okay\0", b"disabled\0",
                            rng.getrandbits(32).to_bytes(4, "big"),
                            bytes(rng.getrandbits(8) for _ in range(rng.choice((3, 8, 16))))))
        node.props[key] = value


def _mutated_dtb(rng: random.Random) -> bytes:
    blobs = _bases()["blobs"]
    blob = blobs[rng.choice(sorted(blobs))]
    if rng.random() < 0.5:
        root = parse_fdt(blob)
        for _ in range(rng.randint(1, 4)):
            _mutate_tree(rng, root)
        return build_fdt(root)
    raw = bytearray(blob)
    for _ in range(rng.randint(1, 8)):
        raw[rng.randrange(len(raw))] = rng.getrandbits(8)
    if rng.random() < 0.2:
        raw = raw[:rng.randrange(len(raw) + 1)]
    return bytes(raw)


def _mutate_table(rng: random.Random, table: bytes, fix: bool) -> bytes:
    raw = bytearray(table)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(raw))
        if rng.random() < 0.5:
            raw[at] = rng.getrandbits(8)
        else:
            width = rng.choice((2, 4, 8))
            raw[at:at + width] = rng.choice((0, (1 << 8 * width) - 1, rng.getrandbits(
                8 * width))).to_bytes(width, "little")
    if rng.random() < 0.15:
        raw = raw[:rng.randrange(len(raw) + 1)]
    elif rng.random() < 0.1:
        raw += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
    if fix and len(raw) >= 36:
        checksum_fix(raw)
    return bytes(raw)


def _mutated_acpi(rng: random.Random) -> tuple[bytes, bytes | None]:
    madt, iort = rng.choice(_bases()["acpi"])
    fix = rng.random() < 0.7
    if rng.random() < 0.7 or iort is None:
        madt = _mutate_table(rng, madt, fix)
    if iort is not None and rng.random() < 0.6:
        iort = _mutate_table(rng, iort, fix)
    return madt, iort


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang


def _documented(exc: DirectLPIError) -> None:
    """A documented error must say what is wrong on one line."""
    text = str(exc)
    if not text or "\n" in text.strip():
        raise Finding(f"firmware-message: {type(exc).__name__} with a message that is not "
                      f"one line: {text!r}")


def _firmware_input(kind: str, data: bytes, iort: bytes | None, boot: bool,
                    counts: Counter[str]) -> None:
    """One input through the check path's readers and the platform builder."""
    plat: Platform | None = None
    try:
        if kind == "dtb":
            dt = read_board(parse_fdt(data))
            plat = Platform.from_board(DtBoard(dt.board, dt.hardware, dt.pci)
                                       if isinstance(dt, DtBoard) else dt)
        else:
            parse_madt(data)
            if iort is not None:
                read_iort(iort)
            plat = Platform.from_acpi(data, iort)
        counts["platforms"] += 1
        if boot:
            plat.boot()
            plat.run_until_idle(verify=True)
            counts["booted"] += 1
    except DirectLPIError as exc:
        _documented(exc)
        counts["documented_errors"] += 1
        counts[f"error:{type(exc).__name__}"] += 1


def firmware_unit(seed: int, n: int) -> UnitResult:
    res = UnitResult("firmware", 0, seed)
    rng = random.Random(seed)
    t0 = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for _ in range(n):
            kind = "dtb" if rng.random() < 0.5 else "acpi"
            if kind == "dtb":
                data, iort = _mutated_dtb(rng), None
                res.counts["dtbs"] += 1
            else:
                data, iort = _mutated_acpi(rng)
                res.counts["acpi_sets"] += 1
            boot = rng.random() < BOOT_FRACTION
            signal.setitimer(signal.ITIMER_REAL, INPUT_TIME_LIMIT)
            try:
                _firmware_input(kind, data, iort, boot, res.counts)
            except _Hang:
                res.findings.append(_firmware_finding(seed, kind, data, iort, boot,
                                                      f"hang: more than {INPUT_TIME_LIMIT} s"))
            except Exception as exc:
                res.findings.append(_firmware_finding(seed, kind, data, iort, boot,
                                                      f"{type(exc).__name__}: {exc}",
                                                      _error_key(exc)))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    res.ops = n
    res.seconds = time.perf_counter() - t0
    return res


def _firmware_finding(seed: int, kind: str, data: bytes, iort: bytes | None, boot: bool,
                      error: str, key: str = "hang") -> dict[str, Any]:
    return {"part": "firmware", "board": kind, "seed": seed, "error": error, "key": key,
            "spec": {"kind": kind, "boot": boot},
            "ops": [["input", data.hex(), iort.hex() if iort is not None else None]]}


# -- units, the minimiser, reproducers ---------------------------------------------------------

def run_unit(stream: str, index: int, seed: int, n: int) -> UnitResult:
    """Run one unit (in a worker process or here)."""
    if stream == "mmio":
        res = mmio_unit(seed, n)
    elif stream == "firmware":
        res = firmware_unit(seed, n)
    else:
        res = stack_unit(stream.split(":", 1)[1], seed, n)
    res.index = index
    for f in res.findings:
        f["unit"] = index
    return res


def _play(finding: dict[str, Any], ops: Sequence[Any]) -> None:
    part = finding["part"]
    if part == "stack":
        _play_stack(finding["spec"], [tuple(o) for o in ops])
    elif part == "mmio":
        _play_mmio(finding["spec"], [tuple(o) for o in ops])
    else:
        counts: Counter[str] = Counter()
        for _tag, data, iort in ops:
            _firmware_input(finding["spec"]["kind"], bytes.fromhex(data),
                            None if iort is None else bytes.fromhex(iort),
                            finding["spec"]["boot"], counts)


def reproduces(finding: dict[str, Any], ops: Sequence[Any]) -> bool:
    """Whether playing ``ops`` fails the way ``finding`` did (same error key)."""
    try:
        _play(finding, ops)
    except Exception as exc:
        return bool(_error_key(exc) == finding["key"])
    return False


def shrink(ops: list[Any], fails: Callable[[list[Any]], bool],
           seconds: float = SHRINK_SECONDS) -> list[Any]:
    """Delta debugging (Zeller's ddmin) of ``ops``, which ``fails``: a shorter list that
    still fails, 1-minimal if the time allows (then removing any one element passes)."""
    deadline = time.monotonic() + seconds
    n = 2
    while len(ops) >= 2 and time.monotonic() < deadline:
        size = math.ceil(len(ops) / n)
        chunks = [ops[i:i + size] for i in range(0, len(ops), size)]
        for i in range(len(chunks)):
            rest = [o for j, c in enumerate(chunks) if j != i for o in c]
            if time.monotonic() >= deadline:
                break
            if fails(rest):
                ops = rest
                n = max(n - 1, 2)
                break
        else:
            if n >= len(ops):
                break
            n = min(len(ops), 2 * n)
    return ops


def shrink_finding(finding: dict[str, Any], seconds: float = SHRINK_SECONDS) -> dict[str, Any]:
    """The finding with its operations shrunk (``ops_before`` keeps the count), if the
    full list reproduces it; else unchanged, marked ``"reproduced": false``."""
    ops = finding["ops"]
    if not reproduces(finding, ops):
        return {**finding, "reproduced": False, "ops_before": len(ops)}
    small = shrink(list(ops), lambda o: reproduces(finding, o), seconds)
    return {**finding, "reproduced": True, "ops_before": len(ops), "ops": small}


def write_reproducer(finding: dict[str, Any], out: Path) -> Path:
    """Write the finding as a replayable JSON file in ``out``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-{finding['part']}-{finding['board']}-{finding['seed']}.json"
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **finding}, indent=1) + "\n")
    return path


class ReplayError(DirectLPIError):
    """A reproducer file that cannot be read (EINVAL)."""


def load_reproducer(path: Path) -> dict[str, Any]:
    """Read and validate a reproducer; ReplayError naming the file and the field."""
    import errno
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read the reproducer: {exc.strerror}",
                          exc.errno or errno.ENOENT) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayError(f"{path}: not a JSON reproducer: {exc}", errno.EINVAL) from None
    need = {"part": str, "board": str, "key": str, "spec": dict, "ops": list}
    for key, kind in need.items():
        if not isinstance(data, dict) or not isinstance(data.get(key), kind):
            raise ReplayError(f"{path}: field {key!r} missing or not a {kind.__name__}",
                              errno.EINVAL)
    if data["part"] not in PARTS:
        raise ReplayError(f"{path}: part {data['part']!r} is not one of {', '.join(PARTS)}",
                          errno.EINVAL)
    if data["part"] == "stack":
        for i, op in enumerate(data["ops"]):
            try:
                check_op(tuple(op) if isinstance(op, list) else ())
            except ValueError as exc:
                raise ReplayError(f"{path}: ops[{i}]: {exc}", errno.EINVAL) from None
    result: dict[str, Any] = data
    return result


def replay(path: Path) -> tuple[bool, str]:
    """Play a reproducer: (True, the error) if it fails as recorded, else (False, what
    happened instead)."""
    finding = load_reproducer(path)
    try:
        _play(finding, finding["ops"])
    except Exception as exc:
        key = _error_key(exc)
        return key == finding["key"], f"{type(exc).__name__}: {exc}"
    return False, "no failure"


# -- the campaign ---------------------------------------------------------------------------------

@dataclass
class Campaign:
    """What to run: parts, seed, an operation count per part (per board for the stack) or
    a wall-time budget, and the number of worker processes."""

    parts: tuple[str, ...] = PARTS
    seed: int = 0
    ops: dict[str, int] | None = None
    """Operations per part (for "stack": per board); None: run to the ``budget``."""
    budget: float | None = None
    jobs: int = 1
    out: Path = Path("soak-findings")
    shrink_seconds: float = SHRINK_SECONDS

    def streams(self) -> list[str]:
        out: list[str] = []
        for part in self.parts:
            out += [f"stack:{b}" for b in BOARDS] if part == "stack" else [part]
        return out


Progress = Callable[[dict[str, int], float], None]
"""``progress(operations done per stream, seconds elapsed)``."""


def _units(c: Campaign) -> Iterator[tuple[str, int, int, int]]:
    """With an operation count: every unit of every stream, round robin."""
    assert c.ops is not None
    streams = c.streams()
    left = {s: c.ops.get(s.split(":")[0], 0) for s in streams}
    index = 0
    while any(left.values()):
        for s in streams:
            part = s.split(":")[0]
            n = min(UNIT_OPS[part], left[s])
            if n:
                left[s] -= n
                yield s, index, unit_seed(c.seed, s, index), n
        index += 1


def run_campaign(c: Campaign, progress: Progress | None = None) -> dict[str, Any]:
    """Run the campaign; returns the summary (docs/reliability.md names its keys)."""
    t0 = time.perf_counter()
    results: list[UnitResult] = []
    done: Counter[str] = Counter()
    spent: dict[str, list[float]] = {}

    def collect(r: UnitResult) -> None:
        results.append(r)
        done[r.stream] += r.ops
        spent.setdefault(r.stream, []).append(r.seconds)
        if progress is not None:
            progress(dict(done), time.perf_counter() - t0)

    if c.jobs <= 1:
        for s, i, seed, n in _next_units(c, spent, t0, {}):
            collect(run_unit(s, i, seed, n))
    else:
        with ProcessPoolExecutor(c.jobs, mp_context=get_context("spawn")) as pool:
            inflight: dict[Future[UnitResult], str] = {}
            units = _next_units(c, spent, t0, inflight)
            for unit in units:
                inflight[pool.submit(run_unit, *unit)] = unit[0]
                if len(inflight) < 2 * c.jobs:
                    continue
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    del inflight[fut]
                    collect(fut.result())
            for fut in list(inflight):
                collect(fut.result())
    findings = []
    for r in results:
        for f in r.findings:
            small = shrink_finding(f, c.shrink_seconds)
            small["file"] = str(write_reproducer(small, c.out))
            findings.append(small)
    return summarise(c, results, findings, time.perf_counter() - t0)


def _next_units(c: Campaign, spent: dict[str, list[float]], t0: float,
                inflight: dict[Any, str]) -> Iterator[tuple[str, int, int, int]]:
    """The units to run: all of them (``ops``), or, under a ``budget``, the next unit of
    the stream that has spent the least time so far (its units done, plus those in flight
    at its mean unit time), until the budget is spent."""
    if c.ops is not None:
        yield from _units(c)
        return
    assert c.budget is not None
    streams = c.streams()
    index: Counter[str] = Counter()

    def cost(k: str) -> float:
        times = spent.get(k, [])
        mean = sum(times) / len(times) if times else 0.0
        return sum(times) + mean * sum(1 for v in inflight.values() if v == k)
    while time.perf_counter() - t0 < c.budget:
        s = min(streams, key=lambda k: (cost(k), index[k], streams.index(k)))
        yield s, index[s], unit_seed(c.seed, s, index[s]), UNIT_OPS[s.split(":")[0]]
        index[s] += 1


def summarise(c: Campaign, results: list[UnitResult], findings: list[dict[str, Any]],
              seconds: float) -> dict[str, Any]:
    """The campaign's summary: stable keys, documented in docs/reliability.md."""
    def total(stream_prefix: str) -> tuple[int, int, float, Counter[str]]:
        rs = [r for r in results if r.stream.startswith(stream_prefix)]
        counts: Counter[str] = Counter()
        for r in rs:
            counts.update(r.counts)
        return sum(r.ops for r in rs), len(rs), sum(r.seconds for r in rs), counts

    parts: dict[str, Any] = {}
    if "mmio" in c.parts:
        ops, units, secs, k = total("mmio")
        parts["mmio"] = {"accesses": ops, "platforms": units, "bursts": k["bursts"],
                         "strict_refusals": k["strict_refusals"], "cpu_seconds": secs,
                         "per_s": ops / secs if secs else 0.0,
                         "platform_kinds": {key.split(":", 1)[1]: v for key, v in k.items()
                                            if key.startswith("platform:")}}
    if "firmware" in c.parts:
        ops, units, secs, k = total("firmware")
        parts["firmware"] = {"inputs": ops, "dtbs": k["dtbs"], "acpi_sets": k["acpi_sets"],
                             "platforms": k["platforms"], "booted": k["booted"],
                             "documented_errors": k["documented_errors"], "cpu_seconds": secs,
                             "per_s": ops / secs if secs else 0.0,
                             "error_types": {key.split(":", 1)[1]: v for key, v in k.items()
                                             if key.startswith("error:")}}
    if "stack" in c.parts:
        boards = {}
        for b in BOARDS:
            ops, units, secs, k = total(f"stack:{b}")
            boards[b] = {
                "ops": ops, "platforms": units, "cpu_seconds": secs,
                "per_s": ops / secs if secs else 0.0,
                "checker": {key.split(":", 1)[1]: v for key, v in k.items()
                            if key.startswith("checker:")},
                "spoofs_sent": k["spoofs_sent"], "spoofs_flagged": k["spoofs_flagged"],
                "faults": {key.split(":", 1)[1]: v for key, v in k.items()
                           if key.startswith("fault:")},
                "two_security_states": k["option:security_states=2"],
                "refusals": {key.split(":", 1)[1]: v for key, v in k.items()
                             if key.startswith("refused:")}}
        parts["stack"] = {"boards": boards}
    return {"schema_version": SCHEMA_VERSION, "seed": c.seed, "parts": list(c.parts),
            "jobs": c.jobs, "ops_per_part": c.ops, "budget_seconds": c.budget,
            "seconds": seconds, "results": parts,
            "findings": [{k: f[k] for k in ("part", "board", "seed", "unit", "error",
                                            "reproduced", "ops_before", "file")}
                         | {"ops_after": len(f["ops"])} for f in findings],
            "ok": not findings}
