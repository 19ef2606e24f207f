"""The compiled build (directlpi._native): the suite runs the build users get, the hardware
tests and the QEMU differential also run on the pure-Python one, and a stale build is never
used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from directlpi import _native
from directlpi._native import (
    MODULES,
    _PureFinder,
    dependencies,
    digests,
    extension,
    shared_library,
    source,
    staleness,
)

ROOT = Path(__file__).resolve().parent.parent
PURE = os.environ.get("DIRECTLPI_PURE", "") not in ("", "0")


def _pure_env() -> dict[str, str]:
    return {**os.environ, "DIRECTLPI_PURE": "1"}


def test_the_suite_runs_the_build_it_asked_for() -> None:
    """The compiled build ./bootstrap made, unless this run asked for pure Python."""
    if PURE:
        assert _native.BUILD == "pure Python (DIRECTLPI_PURE=1)"
    else:
        assert _native.compiled(), (f"running {_native.BUILD}: ./bootstrap builds the "
                                    "compiled modules (and rebuilds them after an edit)")
    for name in MODULES:
        module = sys.modules.get(name) or __import__(name, fromlist=["_"])
        assert module.__file__ is not None
        assert module.__file__.endswith(".py" if PURE else ".so"), name


def test_pure_python_is_selected_by_the_environment() -> None:
    code = ("import directlpi, directlpi.hw.cpuif as c, directlpi.platform_hot as h; "
            "from directlpi import _native; print(_native.BUILD); print(c.__file__); "
            "print(h.__file__)")
    out = subprocess.run([sys.executable, "-c", code], env=_pure_env(), capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0] == "pure Python (DIRECTLPI_PURE=1)"
    assert out[1].endswith("hw/cpuif.py") and out[2].endswith("platform_hot.py")


def test_the_hardware_tests_and_the_qemu_differential_pass_on_pure_python() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/hw",
         "tests/peers/test_qemu_differential.py"],
        cwd=ROOT, env=_pure_env(), capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout.splitlines()[-1]


def _fake_build(root: Path, modules: tuple[str, ...], deps: tuple[str, ...] = ()) -> Path:
    """A package dir under ``root`` with ``modules``' sources (and ``deps``'), their extension
    files and the shared library, and a build record that matches them."""
    for name in modules + deps:
        src = source(name, root)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {name}\n")
    for name in modules:
        extension(name, root).write_bytes(b"")
    shared_library(root).write_bytes(b"")
    stamp = root / "_native.json"
    stamp.write_text(json.dumps({"toolchain": _native._toolchain(), "modules": list(modules),
                                 "sources": digests(modules + deps, root)}))
    return stamp


def test_a_build_is_current_only_for_the_sources_and_toolchain_it_was_made_from(
        tmp_path: Path) -> None:
    mods = ("directlpi.hw.one", "directlpi.kernel.two")
    root = tmp_path / "directlpi"
    stamp = _fake_build(root, mods, deps=("directlpi.hw.consts",))
    assert staleness(mods, root, stamp) is None
    source(mods[1], root).write_text("# edited\n")
    assert staleness(mods, root, stamp) == "stale: directlpi/kernel/two.py changed since the build"
    _fake_build(root, mods, deps=("directlpi.hw.consts",))
    source("directlpi.hw.consts", root).write_text("LIMIT: Final = 2\n")    # a dependency
    assert staleness(mods, root, stamp) == \
        "stale: directlpi/hw/consts.py changed since the build"
    source("directlpi.hw.consts", root).unlink()
    assert staleness(mods, root, stamp) == \
        "stale: directlpi/hw/consts.py changed since the build"
    _fake_build(root, mods)
    assert staleness((*mods, "directlpi.hw.three"), root, stamp) == "not built"
    source("directlpi.hw.three", root).write_text("")
    extension("directlpi.hw.three", root).write_bytes(b"")
    assert staleness((*mods, "directlpi.hw.three"), root, stamp) == \
        "stale: the set of compiled modules changed since the build"
    assert staleness(mods, root, stamp) == "stale: directlpi/hw/" + \
        extension("directlpi.hw.three", root).name + " is not this build's"      # left over
    extension("directlpi.hw.three", root).unlink()
    shared_library(root).unlink()
    assert staleness(mods, root, stamp) == "not built"
    _fake_build(root, mods)
    record = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**record, "toolchain": "python 3.0"}))
    assert str(staleness(mods, root, stamp)).startswith("built with python 3.0, running python")
    stamp.write_text("{")
    assert staleness(mods, root, stamp) == "unreadable build record _native.json"
    stamp.unlink()
    assert staleness(mods, root, stamp) == "not built"


def test_a_build_records_every_package_module_the_compiled_ones_import() -> None:
    deps = dependencies()
    assert set(MODULES) <= set(deps)
    # Constants mypyc copies into compiled code, types it compiles against.
    assert {"directlpi.hw.regs", "directlpi.errors", "directlpi.platform"} <= set(deps)
    assert "directlpi.cli" not in deps and "directlpi.sim.run" not in deps


def test_the_pure_finder_takes_every_package_module_from_its_source() -> None:
    finder = _PureFinder()
    hw_dir = str(source("directlpi.hw.cpuif").parent)
    spec = finder.find_spec("directlpi.hw.cpuif", [hw_dir])
    assert spec is not None and spec.origin == str(source("directlpi.hw.cpuif"))
    spec = finder.find_spec("directlpi.hw.regs", [hw_dir])        # never compiled
    assert spec is not None and spec.origin == str(source("directlpi.hw.regs"))
    pkg = finder.find_spec("directlpi.hw", [str(source("directlpi.hw").parent.parent)])
    assert pkg is not None and pkg.submodule_search_locations
    assert finder.find_spec("json", None) is None
    assert finder.find_spec("directlpi._native__mypyc", [str(_native.PACKAGE_DIR)]) is None
