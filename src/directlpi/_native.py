"""The compiled build: the hot modules compiled with mypyc, and the switch back to pure Python.

The package is plain, fully annotated Python (``mypy --strict``).  ``./bootstrap`` also
compiles the modules in :data:`MODULES` -- the hardware model and the kernel's interrupt
path -- with mypyc into C extensions next to their sources (``build``, below): what a
device's MSI runs through, from the bus write to the handler and EOI, then runs as C.
Python imports an extension module before a source file of the same name, so the
compiled build is what everything gets, unless :func:`select` hides it:

* ``DIRECTLPI_PURE=1`` in the environment: the pure-Python modules (the test suite runs
  the hardware tests this way too; a debugger or a coverage tool wants it).
* **A stale build** -- a compiled module's source changed since the build, or Python or
  mypyc did (the build records their digests in ``_native.json``): pure Python, so that
  an edit is never silently ignored.  ``./bootstrap`` rebuilds only then.
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
whose attributes the frames look up by name once, when their dispatch tables are built."""


def source(module: str, root: Path = PACKAGE_DIR) -> Path:
    """The source file of ``module`` (a name in :data:`MODULES`) under package dir ``root``."""
    return root.joinpath(*module.split(".")[1:]).with_suffix(".py")


def extension(module: str, root: Path = PACKAGE_DIR) -> Path:
    """The extension module the compiled build puts beside ``module``'s source."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return source(module, root).with_suffix(suffix)


def _toolchain() -> str:
    try:
        from mypy.version import __version__ as mypy_version
    except ImportError:  # pragma: no cover - mypy is a development dependency
        mypy_version = "none"
    return f"python {sys.version.split()[0]} {sys.implementation.cache_tag}, mypyc {mypy_version}"


def digests(modules: Sequence[str] = MODULES, root: Path = PACKAGE_DIR) -> dict[str, str]:
    """SHA-256 of each module's source: what a build is valid for."""
    return {m: hashlib.sha256(source(m, root).read_bytes()).hexdigest() for m in modules}


def staleness(modules: Sequence[str] = MODULES, root: Path = PACKAGE_DIR,
              stamp: Path = STAMP) -> str | None:
    """Why the compiled build under ``root`` cannot be used, or None if it can."""
    if not stamp.is_file() or not all(extension(m, root).is_file() for m in modules):
        return "not built"
    try:
        recorded = json.loads(stamp.read_text())
        sources, toolchain = recorded["sources"], recorded["toolchain"]
        if not isinstance(sources, dict):
            raise TypeError(sources)
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable build record {stamp.name}"
    if sorted(sources) != sorted(modules):
        return "stale: the set of compiled modules changed since the build"
    if toolchain != _toolchain():
        return f"built with {toolchain}, running {_toolchain()}"
    now = digests(modules, root)
    changed = [m for m in modules if sources.get(m) != now[m]]
    if changed:
        names = ", ".join(source(m, root).relative_to(root.parent).as_posix() for m in changed)
        return f"stale: {names} changed since the build"
    return None


class _PureFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' sources, ahead of the extension modules beside them."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path or ():
            candidate = Path(entry) / leaf
            if candidate.is_file():
                return importlib.util.spec_from_file_location(fullname, candidate)
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
    # What is compiled is what the sources say now: an edit during the build makes it stale.
    built_from = digests()
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
    STAMP.write_text(json.dumps({"toolchain": _toolchain(), "sources": built_from}, indent=1)
                     + "\n")
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

