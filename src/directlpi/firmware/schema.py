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
    v = _validator()
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
