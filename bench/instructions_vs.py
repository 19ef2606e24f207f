"""Instructions per operation, this tree against another checkout, counted by callgrind.

Timings on the project's shared machines move by 2x with the load; instruction counts
do not (the same program, inputs and environment give the same count).  This runs
each operation N times and 0 times in each tree under ``valgrind --tool=callgrind``
and reports the difference per operation, and the ratio this tree / the other:

    .venv/bin/python bench/instructions_vs.py --old /path/to/older/checkout [--n 2000]

Operations: ``raw`` (a device DMA write to GICR_SETLPIR + ICC_IAR1_EL1 + ICC_EOIR1_EL1,
no kernel), ``e2e`` (an MSI-X vector raised and handled through the kernel), ``mask``
(mask_irq + unmask_irq), ``move`` (irq_set_affinity between two CPUs).  Needs valgrind
(Debian's ``valgrind``); not part of ``directlpi bench`` (it takes minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# Run inside each tree, with that tree's bench/ on sys.path.
CHILD = r'''
import sys
sys.path.insert(0, "bench")
what, n = sys.argv[1], int(sys.argv[2])
if what == "raw":
    import bench_hw as b
    from directlpi import Platform
    from directlpi.sim.bringup import bring_up, configure_lpi
    plat = Platform.bare(cpus=8)
    tables = bring_up(plat, [1])
    configure_lpi(plat, tables, 8192, invalidate=[1])
    run = b._cycle(plat, 1, 8192)
    run(200)
    run(n)
    raise SystemExit
import bench_direct_lpi as b
plat, kern, dev, virq = b._setup(msix_vectors=4)
if what == "e2e":
    for _ in range(200 + n):
        dev.raise_msi(1)
        plat.run_until_idle()
elif what == "mask":
    for _ in range(n):
        kern.mask_irq(virq)
        kern.unmask_irq(virq)
elif what == "move":
    for _ in range(n // 2):
        kern.irq_set_affinity(virq, {2})
        kern.irq_set_affinity(virq, {5})
'''
OPS = ("raw", "e2e", "mask", "move")


def instructions(tree: Path, what: str, n: int, script: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.devnull}",
         sys.executable, str(script), what, str(n)],
        cwd=tree, env=env, capture_output=True, text=True, check=True)
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"no callgrind count for {what} in {tree}:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", type=Path, required=True, help="the other checkout")
    ap.add_argument("--n", type=int, default=2000, help="operations counted (default 2000)")
    ap.add_argument("--only", choices=OPS, action="append", default=[])
    args = ap.parse_args(argv)
    new = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(CHILD)
        for what in args.only or OPS:
            per = []
            for tree in (args.old.resolve(), new):
                base = instructions(tree, what, 0, script)
                per.append((instructions(tree, what, args.n, script) - base) / args.n)
            print(f"{what:5} other {per[0]:9.0f} instr/op   this {per[1]:9.0f} instr/op   "
                  f"this/other {per[1] / per[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
