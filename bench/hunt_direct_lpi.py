"""The long hunt: millions of random whole-stack operations against the invariant checker.

Not a benchmark (``directlpi bench`` runs only ``bench_*.py``) and not a test (far too
long): a soak run of :class:`directlpi.sim.stress.StackExerciser` -- the operations of
the hypothesis state machine, drawn from a seeded RNG -- on every board variant: Direct
LPI, MBI, ITS and GICv2m, posted writes off and on, EnableLPIs clearable or not.  Each variant runs
in chunks of a fresh platform (so a finding is reproducible from its seed and chunk)
until the operation budget is spent.  A finding (an invariant violated, an undocumented
refusal, an exception) is printed with its seed, chunk, and the last operations.

    .venv/bin/python bench/hunt_direct_lpi.py --ops 1000000 [--seed 0] [--json]

Exit status 0 when nothing was found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from typing import Any

from directlpi.sim.stress import StackExerciser

VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("direct-lpi", {}),
    ("direct-lpi+posted", {"posted": True}),
    ("direct-lpi+posted+ces", {"posted": True, "clearable": True}),
    ("mbi", {"board": "mbi"}),
    ("mbi+posted", {"board": "mbi", "posted": True}),
    ("its", {"board": "its"}),
    ("its+posted", {"board": "its", "posted": True}),
    ("gicv2m+posted", {"board": "gicv2m", "posted": True}),
    ("spi-pv+posted", {"board": "spi-pv", "posted": True}),
)
CHUNK = 5_000
"""Operations per fresh platform."""


def hunt_variant(name: str, options: dict[str, Any], ops: int, seed: int
                 ) -> dict[str, Any]:
    done = 0
    chunk = 0
    findings: list[dict[str, Any]] = []
    kinds: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    t0 = time.perf_counter()
    while done < ops:
        chunk_seed = seed * 1_000_003 + chunk
        rng = random.Random(chunk_seed)
        x = StackExerciser(options.get("board", "direct-lpi"), cpus=4, seed=chunk_seed,
                           posted=options.get("posted", False),
                           clearable=options.get("clearable", False))
        last: list[str] = []
        n = min(CHUNK, ops - done)
        try:
            for _ in range(n):
                op = x.random_op(rng)
                kinds[op] += 1
                last.append(op)
                del last[:-12]
            x.run()
        except Exception as exc:                       # a finding, whatever it is
            findings.append({"variant": name, "seed": chunk_seed, "chunk": chunk,
                             "error": f"{type(exc).__name__}: {exc}", "last_ops": last})
        for (op, err), count in x.refused.counts.items():
            refusals[f"{op}:{err}"] += count
        done += n
        chunk += 1
    seconds = time.perf_counter() - t0
    return {"variant": name, "operations": done, "platforms": chunk, "seconds": seconds,
            "ops_per_s": done / seconds, "findings": findings, "operation_mix": dict(kinds),
            "documented_refusals": dict(refusals)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=1_000_000,
                    help="operations in all, shared among the variants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="run only this variant")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    variants = [v for v in VARIANTS if args.only in (None, v[0])]
    if not variants:
        ap.error(f"no variant named {args.only!r}; known: {', '.join(v[0] for v in VARIANTS)}")
    results = [hunt_variant(name, opts, args.ops // len(variants), args.seed)
               for name, opts in variants]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print(f"{r['variant']:<24} {r['operations']:>9,} ops on {r['platforms']:>4} "
                  f"platforms in {r['seconds']:7.1f} s ({r['ops_per_s']:,.0f} ops/s): "
                  f"{len(r['findings'])} finding(s)")
            for f in r["findings"][:5]:
                print(f"    seed {f['seed']} chunk {f['chunk']}: {f['error']}")
                print(f"      last ops: {', '.join(f['last_ops'])}")
            print(f"    documented refusals: {r['documented_refusals']}")
    return 1 if any(r["findings"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
