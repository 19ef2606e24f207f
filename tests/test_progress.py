"""Progress on a terminal, nothing on a pipe, and Ctrl-C keeping what was finished: the
CLI run in a subprocess whose standard error is a pseudo-terminal, or a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

DIRECTLPI = [sys.executable, "-m", "directlpi"]


def _bench_dir(tmp_path: Path, interrupt: bool = False) -> Path:
    d = tmp_path / "bench"
    d.mkdir()
    for name, value in (("a", 1.0), ("b", 2.0)):
        body = "raise KeyboardInterrupt" if interrupt and name == "b" else (
            f"return [Figure('{name}_key', {value}, 'ops/s', 'bench {name}')]")
        (d / f"bench_{name}.py").write_text(
            "import time\nfrom directlpi.benchkit import Figure\n\n"
            f"def run(quick):\n    time.sleep(0.3)\n    {body}\n")
    return d


def _on_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI with standard error on a pseudo-terminal: (status, stdout, terminal)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*DIRECTLPI, *args], stdout=subprocess.PIPE, stderr=slave,
                            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"})
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            pytest.fail("the CLI wrote nothing for 60 s")
        try:
            chunk = os.read(master, 4096)
        except OSError:                       # the terminal's last writer has gone
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read().decode() if proc.stdout else ""
    os.close(master)
    return proc.wait(), out, seen.decode(errors="replace")


def test_bench_shows_progress_on_a_terminal_and_nothing_on_a_pipe(tmp_path: Path) -> None:
    bench = str(_bench_dir(tmp_path))
    status, out, terminal = _on_terminal(["bench", "--bench-dir", bench])
    assert status == 0 and "a_key" in out and "b_key" in out
    assert "bench: bench_a (1/2)" in terminal or "bench: bench_b (2/2)" in terminal
    piped = subprocess.run([*DIRECTLPI, "bench", "--bench-dir", bench], capture_output=True,
                           text=True, check=False)
    assert piped.returncode == 0 and "b_key" in piped.stdout and piped.stderr == ""


def test_run_shows_its_ticks_on_a_terminal_only() -> None:
    status, out, terminal = _on_terminal(["run"])
    assert status == 0 and "run: tick" in terminal and "invariants" in out
    piped = subprocess.run([*DIRECTLPI, "run"], capture_output=True, text=True, check=False)
    assert piped.returncode == 0 and piped.stderr == ""


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_ctrl_c_in_bench_keeps_the_figures_measured(tmp_path: Path, terminal: bool) -> None:
    bench = str(_bench_dir(tmp_path, interrupt=True))
    if terminal:
        status, out, err = _on_terminal(["bench", "--bench-dir", bench])
    else:
        done = subprocess.run([*DIRECTLPI, "bench", "--bench-dir", bench],
                              capture_output=True, text=True, check=False)
        status, out, err = done.returncode, done.stdout, done.stderr
    assert status == 130 and "a_key" in out and "b_key" not in out
    assert "interrupted: the figures above were measured" in err
