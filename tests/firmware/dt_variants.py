"""Shipped boards and variants of them, for the devicetree tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from directlpi.firmware.boards import BOARDS_DIR
from directlpi.firmware.devicetree import DtError, load_board


def board(name: str) -> Path:
    return BOARDS_DIR / f"{name}.dts"


def variant(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A shipped board with text replaced (each ``old`` must occur)."""
    text = board(name).read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    out = tmp_path / f"{name}-variant.dts"
    out.write_text(text)
    return out


def problems(path: Path) -> list[str]:
    with pytest.raises(DtError) as exc:
        load_board(path)
    return exc.value.problems


#: The ITS node of boards/its.dts, as the file spells it.
ITS_NODE = """		its: msi-controller@8080000 {
			compatible = "arm,gic-v3-its";
			msi-controller;
			#msi-cells = <1>;			/* the DeviceID */
			reg = <0x0 0x08080000 0x0 0x20000>;
		};"""


def its_at(base: int) -> str:
    """An ITS child node at ``base``, one line."""
    return (f"\t\tmsi-controller@{base:x} {{ compatible = \"arm,gic-v3-its\"; msi-controller; "
            f"#msi-cells = <1>; reg = <0x0 {base:#x} 0x0 0x20000>; }};")
