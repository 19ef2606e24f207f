"""The long hunt: now a thin wrapper over ``directlpi soak --parts stack``.

Not a benchmark (``directlpi bench`` runs only ``bench_*.py``) and not a test (far too
long).  It runs the soak campaign's whole-stack part (:mod:`directlpi.sim.soak`):
:class:`directlpi.sim.stress.StackExerciser` on every board (Direct LPI, MBI, ITS, GICv2m,
the Hyper-V SPI route), posted writes, EnableLPIs clearable or not and the injected faults
switched on at random, ``--ops`` shared among the boards.  A finding is shrunk and written
as a reproducer (``directlpi soak --replay FILE`` plays it again).

    .venv/bin/python bench/hunt_direct_lpi.py --ops 1000000 [--seed 0] [--jobs 2] [--json]

Exit status 0 when nothing was found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from directlpi.sim.soak import BOARDS, Campaign, run_campaign


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=1_000_000,
                    help="operations in all, shared among the boards")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("soak-findings"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    summary = run_campaign(Campaign(parts=("stack",), seed=args.seed, jobs=args.jobs,
                                    ops={"stack": max(1, args.ops // len(BOARDS))},
                                    out=args.out))
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        for board, r in summary["results"]["stack"]["boards"].items():
            print(f"{board:<12} {r['ops']:>9,} ops on {r['platforms']:>5} platforms "
                  f"({r['per_s']:,.0f} ops/s per process)")
        for f in summary["findings"]:
            print(f"FINDING {f['board']} seed {f['seed']}: {f['error']}\n    {f['file']}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
