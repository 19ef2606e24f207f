"""The compiled build: the hot modules compiled with mypyc, and the switch back to pure Python.

The package is plain, fully annotated Python (``mypy --strict``).  ``./bootstrap`` also
compiles the modules in :data:`MODULES` -- the hardware model and the kernel's interrupt
path -- with mypyc into C extensions next to their sources (``build``, below): what a
device's MSI runs through, from the bus write to the handler and EOI, then runs as C.
Python imports an extension module before a source file of the same name, so the
compiled build is what everything gets, unless :func:`select` hides it:

* ``DIRECTLPI_PURE=1`` in the environment: the pure-Python modules (the test suite runs
  the hardware tests this way too; a debugger or a coverage tool wants it).
* **A stale build** -- the source of a compiled module or of any package module it
  imports changed since the build, or the set of compiled modules did, or Python or mypyc
  did (the build records them in ``_native.json``), or an extension module is there that
  the build did not make: pure Python, so that an edit is never silently ignored.
  ``./bootstrap`` rebuilds only then.
* **No build** (an installed wheel, or a machine without a C compiler): pure Python.

:data:`BUILD` says which one is running, and why; ``directlpi bench`` prints it.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
GROUP = "directlpi._native"
"""mypyc's group name: the shared library is ``directlpi/_native__mypyc.*.so``."""
STAMP = PACKAGE_DIR / "_native.json"

MODULES: tuple[str, ...] = (
    "directlpi.hw.bus",
    "directlpi.hw.cache",
    "directlpi.hw.cpuif",
    "directlpi.hw.distributor",
    "directlpi.hw.events",
    "directlpi.hw.gic",
    "directlpi.hw.gicv2m",
    "directlpi.hw.hv_vpci",
    "directlpi.hw.its",
    "directlpi.hw.lpi_queue",
    "directlpi.hw.memory",
    "directlpi.hw.mmio",
    "directlpi.hw.redistributor",
    "directlpi.kernel.context",
    "directlpi.kernel.irq.chip",
    "directlpi.kernel.irq.core",
    "directlpi.kernel.irq.desc",
    "directlpi.kernel.irq.flow",
    "directlpi.kernel.irqchip.gic_v3",
    "directlpi.kernel.kernel",
    "directlpi.devices.pci",
    "directlpi.devices.msi_master",
    "directlpi.devices.platform_msi",
    "directlpi.devices.hv_vpci",
    "directlpi.platform_hot",
)
"""What is compiled.  ``hw/regs.py`` is not: its register namespaces are plain classes
whose attributes the frames look up by name once, when their dispatch tables are built
(its literal ``Final`` constants are copied into the compiled code, which is why a build
records every module the compiled ones import: :func:`dependencies`)."""


def source(module: str, root: Path = PACKAGE_DIR) -> Path:
    """The source file of ``module`` (``directlpi.X.Y``) under package dir ``root``: its
    ``.py``, or a package's ``__init__.py``."""
    path = root.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def extension(module: str, root: Path = PACKAGE_DIR) -> Path:
    """The extension module the compiled build puts beside ``module``'s source."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return root.joinpath(*module.split(".")[1:]).with_suffix(suffix)


def shared_library(root: Path = PACKAGE_DIR) -> Path:
    """mypyc's shared library of the group, which every compiled module loads."""
    return root / (GROUP.rpartition(".")[2] + "__mypyc" + importlib.machinery.EXTENSION_SUFFIXES[0])


def extensions_present(root: Path = PACKAGE_DIR) -> list[Path]:
    """Every extension module under ``root`` (a build's, or one left by an older one)."""
    return sorted({p for suffix in importlib.machinery.EXTENSION_SUFFIXES
                   for p in root.rglob("*" + suffix)})


def _toolchain() -> str:
    try:
        from mypy.version import __version__ as mypy_version
    except ImportError:  # pragma: no cover - mypy is a development dependency
        mypy_version = "none"
    return f"python {sys.version.split()[0]} {sys.implementation.cache_tag}, mypyc {mypy_version}"


def dependencies(modules: Sequence[str] = MODULES, root: Path = PACKAGE_DIR) -> list[str]:
    """``modules`` and every package module they import, directly or not (also under
    TYPE_CHECKING): mypyc compiles against their types and copies their literal ``Final``
    values, so an edit to any of them changes what the compiled code must be."""
    import ast

    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = source(name, root)
        if not path.is_file():
            continue
        seen.add(name)
        parts = name.split(".")
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = parts[:-node.level] if path.name != "__init__.py" or node.level > 1 \
                        else parts
                    base = ".".join([*pkg, *([base] if base else [])])
                if base.split(".")[0] == "directlpi":
                    todo.append(base)
                    todo.extend(f"{base}.{a.name}" for a in node.names)
                    dots = base.split(".")
                    todo.extend(".".join(dots[:i]) for i in range(2, len(dots)))
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.split(".")[0] == "directlpi")
    return sorted(m for m in seen if m != "directlpi")


def digests(modules: Sequence[str], root: Path = PACKAGE_DIR) -> dict[str, str]:
    """SHA-256 of each module's source."""
    return {m: hashlib.sha256(source(m, root).read_bytes()).hexdigest() for m in modules}


def staleness(modules: Sequence[str] = MODULES, root: Path = PACKAGE_DIR,
              stamp: Path = STAMP) -> str | None:
    """Why the compiled build under ``root`` cannot be used, or None if it can."""
    if not stamp.is_file() or not shared_library(root).is_file() \
            or not all(extension(m, root).is_file() for m in modules):
        return "not built"
    try:
        recorded = json.loads(stamp.read_text())
        built, sources, toolchain = recorded["modules"], recorded["sources"], \
            recorded["toolchain"]
        if not isinstance(sources, dict) or not isinstance(built, list):
            raise TypeError(sources)
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable build record {stamp.name}"
    if sorted(built) != sorted(modules):
        return "stale: the set of compiled modules changed since the build"
    expected = {extension(m, root) for m in modules} | {shared_library(root)}
    leftover = [p for p in extensions_present(root) if p not in expected]
    if leftover:
        return f"stale: {leftover[0].relative_to(root.parent).as_posix()} is not this build's"
    if toolchain != _toolchain():
        return f"built with {toolchain}, running {_toolchain()}"
    changed = []
    for name, digest in sorted(sources.items()):
        try:
            now = hashlib.sha256(source(name, root).read_bytes()).hexdigest()
        except OSError:
            now = None
        if now != digest:
            changed.append(source(name, root).relative_to(root.parent).as_posix())
    if changed:
        return f"stale: {', '.join(changed)} changed since the build"
    return None


class _PureFinder(importlib.abc.MetaPathFinder):
    """Finds every ``directlpi`` module from its source, ahead of any extension module
    beside it (this build's, or one an older build left)."""

    def __init__(self) -> None:
        self._finders: dict[str, importlib.machinery.FileFinder] = {}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("directlpi."):
            return None
        for entry in path or ():
            finder = self._finders.get(entry)
            if finder is None:
                finder = importlib.machinery.FileFinder(
                    entry, (importlib.machinery.SourceFileLoader,
                            importlib.machinery.SOURCE_SUFFIXES))
                self._finders[entry] = finder
            spec = finder.find_spec(fullname, target)
            if spec is not None:
                return spec
        return None


BUILD = "pure Python (not selected yet)"
"""Which build runs: ``compiled (mypyc, N modules)`` or ``pure Python (why)``."""


def compiled() -> bool:
    """Whether the compiled build is the one running."""
    return BUILD.startswith("compiled")


def select() -> str:
    """Choose the build for this process (once, before any compiled module is imported)."""
    global BUILD
    if not BUILD.endswith("(not selected yet)"):
        return BUILD
    if os.environ.get("DIRECTLPI_PURE", "") not in ("", "0"):
        why: str | None = "DIRECTLPI_PURE=1"
    else:
        why = staleness()
    if why is None:
        BUILD = f"compiled (mypyc, {len(MODULES)} modules)"
    else:
        BUILD = f"pure Python ({why})"
        if not any(isinstance(f, _PureFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _PureFinder())
    return BUILD


def build(force: bool = False) -> str:
    """Compile :data:`MODULES` with mypyc in place (a C compiler is needed); skip if current."""
    if not force and staleness() is None:
        return f"directlpi: compiled build is current ({len(MODULES)} modules)"
    import shutil
    import tempfile

    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    src = PACKAGE_DIR.parent
    STAMP.unlink(missing_ok=True)
    # Unlinked, not overwritten: a running process keeps the file it mapped, and nothing an
    # older build left (a module no longer compiled) survives to be imported.
    for old in extensions_present():
        old.unlink(missing_ok=True)
    # What is compiled is what the sources say now: an edit during the build makes it stale.
    built_from = digests(dependencies())
    with tempfile.TemporaryDirectory(prefix="directlpi-mypyc-") as tmp:
        cwd = Path.cwd()
        os.chdir(src)
        try:
            paths = [source(m).relative_to(src).as_posix() for m in MODULES]
            ext = mypycify(paths, opt_level="3", group_name=GROUP,
                           target_dir=str(Path(tmp) / "c"))
            setup(name="directlpi-native", ext_modules=ext, script_name="directlpi._native",
                  script_args=["-q", "build_ext", "--inplace", "--build-temp",
                               str(Path(tmp) / "o"), "--build-lib", str(Path(tmp) / "lib")])
        finally:
            os.chdir(cwd)
        shutil.rmtree(src / ".mypy_cache", ignore_errors=True)
    STAMP.write_text(json.dumps({"toolchain": _toolchain(), "modules": list(MODULES),
                                 "sources": built_from}, indent=1) + "\n")
    return f"directlpi: compiled {len(MODULES)} modules with mypyc"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -c 'from directlpi._native import main; main()' [--force|--status]`` (what
    ./bootstrap runs; ``python -m`` would import this module twice)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--status"]:
        print(select())
        return 0
    if args not in ([], ["--force"]):
        print("usage: directlpi._native.main [--force | --status]", file=sys.stderr)
        return 2
    print(build(force=bool(args)))
    return 0

