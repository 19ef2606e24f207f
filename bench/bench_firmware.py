"""Firmware descriptions: what booting from a devicetree costs.

* ``default_board_build_ms`` -- ``Platform.default(cpus=8)``: the shipped default DTB
  parsed, read and checked into a board description, and the hardware built.
* ``default_512_build_ms`` -- the same with 512 cpu nodes and two GICR regions.
* ``dt_load_256_ms`` -- ``load_board`` of the 256-CPU example board's DTB (parse and
  every check), no hardware.
"""

from __future__ import annotations

from directlpi import Platform
from directlpi.benchkit import Figure, median_seconds
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.firmware.devicetree import fdt_bytes, load_board


def run(quick: bool) -> list[Figure]:
    repeats = 5 if quick else 21
    big = fdt_bytes(BOARDS_DIR / "gicr-256cpus.dts")
    return [
        Figure("default_board_build_ms", 1e3 * median_seconds(
            lambda: Platform.default(cpus=8), repeats), "ms",
               "Platform.default(cpus=8): default DTB -> board description -> hardware"),
        Figure("default_512_build_ms", 1e3 * median_seconds(
            lambda: Platform.default(cpus=512), repeats), "ms",
               "Platform.default(cpus=512): 512 cpu nodes, two GICR regions"),
        Figure("dt_load_256_ms", 1e3 * median_seconds(lambda: load_board(big), repeats), "ms",
               "load_board of the 256-CPU example DTB: parse and check, no hardware"),
    ]
