"""Devicetree schema validation against the project's bindings (``directlpi/bindings``).

Uses dtschema in-process, as ``dt-validate`` does, because ``dt-validate`` exits
0 even when it reports errors.  dtschema is an optional dependency (the ``dt``
extra; ``./bootstrap`` installs it); without it :func:`schema_problems` raises
:class:`SchemaUnavailable`.  dtschema's validator is internal API: the project
pins a dtschema range in ``pyproject.toml``.
"""

from __future__ import annotations

import contextlib
import io
from functools import cache
from pathlib import Path
from typing import Any

from directlpi.firmware.acpi import FirmwareError

BINDINGS_DIR = Path(__file__).resolve().parent.parent / "bindings"


class SchemaUnavailable(FirmwareError):
    """dtschema is not installed."""


def binding_files() -> list[Path]:
    """Every dt-schema binding the project ships."""
    return sorted(BINDINGS_DIR.rglob("*.yaml"))


@cache
def _validator() -> Any:
    try:
        import dtschema  # type: ignore[import-untyped]
    except ImportError:
        raise SchemaUnavailable("dtschema is not installed (pip install '.[dt]', or "
                                "./bootstrap): devicetree schemas not checked") from None
    # dtschema prints schema-loading warnings to stderr; a problem in our own
    # bindings is caught by the tests (dt-doc-validate), not shown to users.
    with contextlib.redirect_stderr(io.StringIO()):
        return dtschema.DTValidator([str(BINDINGS_DIR)])


def _walk(tree: dict[str, Any], name: str, path: str) -> Any:
    yield tree, name, path
    for key, value in tree.items():
        if isinstance(value, dict) and not key.startswith("__"):
            yield from _walk(value, key, f"{path.rstrip('/')}/{key}")


def schema_problems(dtb: bytes) -> list[str]:
    """One line per schema violation of the DTB: ``<node path>: <property>: <message>``."""
    return _problems(_validator(), dtb)


def _problems(v: Any, dtb: bytes) -> list[str]:
    decode_errors: list[str] = []
    with contextlib.redirect_stderr(io.StringIO()):
        trees = v.decode_dtb(dtb, decode_errors)
    problems = [f"schema: {e}" for e in decode_errors]
    for tree in trees:
        for node, name, path in _walk(tree, "/", "/"):
            node["$nodename"] = [name]
            for err in v.iter_errors(node):
                if getattr(err, "schema_file", None) == "generated-compatibles":
                    continue
                where = ":".join(str(p) for p in err.absolute_path)
                schema = str(getattr(err, "schema_file", "") or "").rsplit("/", 1)[-1]
                msg = err.message if not err.context else min(
                    (c.message for c in err.context), key=len)
                problems.append(f"{path}: {where + ': ' if where else ''}{msg} "
                                f"(schema {schema})")
    return problems


# -- the kernel's own bindings, with the proposal applied ---------------------------------------

KERNEL_BINDINGS_ENV = "DIRECTLPI_KERNEL_BINDINGS"
"""Environment variable naming a kernel ``Documentation/devicetree/bindings`` directory
(default: the one ``./bootstrap`` extracts from Debian's linux-source)."""
KERNEL_BINDINGS_DEFAULT = Path(".venv") / "share" / "linux-dt-bindings"
KERNEL_GIC_V3 = "interrupt-controller/arm,gic-v3.yaml"
KERNEL_ROOTS = (KERNEL_GIC_V3, "pci/host-generic-pci.yaml", "arm/cpus.yaml")
"""The kernel bindings the shipped boards' nodes need (their $refs are followed)."""
PROPOSAL_FILES = ("interrupt-controller/arm,gic-v3-direct-lpi.yaml",
                  "misc/directlpi,hardware-model.yaml", "arm/directlpi,virt.yaml",
                  "bus/microsoft,vmbus.yaml")
"""Our bindings with no kernel counterpart (the proposal itself, and the model's own)."""
OURS_IN_THE_KERNEL = {"/schemas/pci/pci-host-ecam-generic.yaml#":
                      "/schemas/pci/host-generic-pci.yaml#"}
"""Our bindings' $refs to our schemas of nodes the kernel has its own binding for."""
PROPOSED_GIC_V3_PROPERTIES = ("direct-lpi",)
PROPOSED_GIC_V3_PATTERNS = ("^v2m@[0-9a-f]+$",)
"""What the proposal adds to the kernel's arm,gic-v3.yaml: the Direct LPI child, and the
GICv2m frame children Linux already probes under a GICv3 without LPIs."""


def kernel_bindings_dir() -> Path:
    """The kernel bindings directory, or SchemaUnavailable saying how to get one."""
    import os

    where = Path(os.environ.get(KERNEL_BINDINGS_ENV) or
                 Path(__file__).resolve().parents[3] / KERNEL_BINDINGS_DEFAULT)
    if not (where / KERNEL_GIC_V3).is_file():
        raise SchemaUnavailable(f"no kernel devicetree bindings at {where} (./bootstrap "
                                "extracts them from Debian's linux-source; or set "
                                f"{KERNEL_BINDINGS_ENV} to a kernel's "
                                "Documentation/devicetree/bindings)")
    return where


def apply_proposal(kernel_gic_v3: str) -> str:
    """The kernel's arm,gic-v3.yaml with the proposal applied: each key of
    :data:`PROPOSED_GIC_V3_PROPERTIES` and :data:`PROPOSED_GIC_V3_PATTERNS` taken from
    our arm,gic-v3.yaml and added, nothing else changed."""
    from ruamel.yaml import YAML  # dtschema's own YAML library

    yaml = YAML()
    theirs = yaml.load(kernel_gic_v3)
    ours = yaml.load((BINDINGS_DIR / KERNEL_GIC_V3).read_text())
    for key in PROPOSED_GIC_V3_PROPERTIES:
        if key in theirs["properties"]:
            raise FirmwareError(f"kernel {KERNEL_GIC_V3}: already has {key}: the proposal "
                                "needs revisiting")
        theirs["properties"][key] = ours["properties"][key]
    for key in PROPOSED_GIC_V3_PATTERNS:
        theirs.setdefault("patternProperties", {})[key] = ours["patternProperties"][key]
    out = io.StringIO()
    yaml.dump(theirs, out)
    return out.getvalue()


def kernel_schema_problems(dtb: bytes, bindings: Path, proposal: bool = True) -> list[str]:
    """:func:`schema_problems` against the kernel's bindings (the ones the boards need,
    with their $refs) with the proposal applied (unless ``proposal`` is False), plus our
    bindings that have no kernel counterpart."""
    return _problems(_kernel_validator(bindings, proposal), dtb)


@cache
def _kernel_validator(bindings: Path, proposal: bool) -> Any:
    import re
    import tempfile

    import dtschema

    files: set[str] = set()
    todo = list(KERNEL_ROOTS)
    while todo:
        rel = todo.pop()
        if rel in files or not (bindings / rel).is_file():
            continue                                    # a dtschema core schema
        files.add(rel)
        todo += re.findall(r"\$ref:\s*['\"]?/schemas/([^#'\"\s]+)", (bindings / rel).read_text())
    root = Path(tempfile.mkdtemp(prefix="directlpi-kernel-bindings-"))
    for rel in files | set(PROPOSAL_FILES):
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        src = BINDINGS_DIR / rel if rel in PROPOSAL_FILES else bindings / rel
        text = src.read_text()
        if rel in PROPOSAL_FILES:
            for ours, theirs in OURS_IN_THE_KERNEL.items():
                text = text.replace(ours, theirs)
        dst.write_text(apply_proposal(text) if rel == KERNEL_GIC_V3 and proposal else text)
    with contextlib.redirect_stderr(io.StringIO()):
        return dtschema.DTValidator([str(root)])
