"""Each layer imports only the layers under it (DESIGN.md: devices -> hw -> kernel ->
firmware/platform -> sim -> cli), and the kernel reaches the hardware only through
the bus, RAM and system registers -- never through model internals."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "directlpi"

# What each layer may import from the package (besides itself).
ALLOWED = {
    "errors": set(),
    "devices": {"errors"},
    "hw": {"errors"},
    "kernel": {"errors", "hw", "devices"},
    "firmware": {"errors", "hw", "devices", "kernel"},
    "platform": {"errors", "hw", "devices", "kernel", "firmware"},
    "sim": {"errors", "hw", "devices", "kernel", "firmware", "platform", "benchkit"},
    "benchkit": {"errors"},
    "cli": {"errors", "hw", "devices", "kernel", "firmware", "platform", "sim", "benchkit",
            "_native"},
    "_native": set(),
    "__main__": {"cli"},
}

# hw modules the kernel may import: the register map (constants), RAM, and the CPU's
# view of RAM (its data cache, with the cache maintenance software can do).
KERNEL_HW_ALLOWED = {"directlpi.hw.regs", "directlpi.hw.memory", "directlpi.hw.cache"}


# platform_hot.py is the platform's per-MSI code, a module of its own only to be compiled.
SAME_LAYER = {"platform_hot": "platform"}


def layer_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    name = rel.parts[0].removesuffix(".py")
    return SAME_LAYER.get(name, name)


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return [m for m in out if m.startswith("directlpi")]


def test_layers_import_only_what_is_under_them() -> None:
    problems = []
    for path in PKG.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == PKG:
            continue
        layer = layer_of(path)
        for mod in imports(path):
            parts = mod.split(".")
            if len(parts) < 2:
                continue
            target = SAME_LAYER.get(parts[1], parts[1])
            if target != layer and target not in ALLOWED.get(layer, set()):
                problems.append(f"{path.relative_to(PKG)} imports {mod}")
            if layer == "kernel" and target == "hw" and mod not in KERNEL_HW_ALLOWED:
                problems.append(f"{path.relative_to(PKG)} reaches into the model: {mod}")
    assert problems == []
