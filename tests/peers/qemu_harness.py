"""QEMU's GICv3 as a second opinion: MMIO through qtest, system registers through an agent.

QEMU runs ``-M virt,gic-version=3,its=off -cpu max -accel tcg`` with ``-qtest stdio`` as
a side channel.  The qtest accelerator would hold the vCPUs (and Debian's build has none:
"invalid accelerator qtest"), but system registers can only be reached by instructions,
so TCG runs the PEs and qtest is used only for what it does without a CPU: physical
memory and MMIO accesses, executed in QEMU's main loop under the big lock, exactly as a
PE's load or store to the GIC would be.  The ICC_* registers are accessed by a small EL1
agent (``agent.S``, assembled here with binutils-aarch64-linux-gnu) that spins on one
mailbox in RAM per PE and runs MRS/MSR from a jump table on command.  A command is
complete when the agent has written its result and acknowledged it; the harness waits for
that before it sends the next, so the MMIO accesses and the system-register accesses of a
scenario happen in program order, as on one PE.

A reset (between scenarios) is PSCI SYSTEM_RESET executed by the agent: QEMU resets the
machine (GIC included), reloads the agent and starts PE 0, which starts the other PEs
with PSCI CPU_ON; RAM other than the agent's image is kept, so the harness clears the
tables it uses itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent

RAM_BASE = 0x4000_0000
RAM_SIZE = 256 << 20
AGENT_BASE = 0x4020_0000
"""Where the agent is linked (above the DTB QEMU puts at the start of RAM)."""
MBOX_BASE = 0x4030_0000
MBOX_STRIDE = 64
_SEQ, _RESULT, _BOOTS = 16, 24, 48

#: System registers the agent can access: (name, how).  Order gives the jump-table index.
SYSREG_READS = (
    "ICC_IAR0_EL1", "ICC_IAR1_EL1", "ICC_HPPIR0_EL1", "ICC_HPPIR1_EL1", "ICC_RPR_EL1",
    "ICC_PMR_EL1", "ICC_BPR0_EL1", "ICC_BPR1_EL1", "ICC_CTLR_EL1", "ICC_IGRPEN0_EL1",
    "ICC_IGRPEN1_EL1", "ICC_SRE_EL1",
    *(f"ICC_AP{g}R{n}_EL1" for g in (0, 1) for n in range(4)),
    "ISR_EL1",
)
SYSREG_WRITES = (
    "ICC_EOIR0_EL1", "ICC_EOIR1_EL1", "ICC_DIR_EL1", "ICC_PMR_EL1", "ICC_BPR0_EL1",
    "ICC_BPR1_EL1", "ICC_CTLR_EL1", "ICC_IGRPEN0_EL1", "ICC_IGRPEN1_EL1", "ICC_SRE_EL1",
    "ICC_SGI0R_EL1", "ICC_SGI1R_EL1", "ICC_ASGI1R_EL1",
    *(f"ICC_AP{g}R{n}_EL1" for g in (0, 1) for n in range(4)),
)
_OPS = [("mrs", r) for r in SYSREG_READS] + [("msr", r) for r in SYSREG_WRITES]
_OP_INDEX = {k: i for i, k in enumerate(_OPS)}
_RESET_OP = len(_OPS)

UNDEF = "UNDEF"
"""What a system-register access that took an exception (or a model refusal) reads as."""

_TOOLS = {
    "qemu-system-aarch64": "qemu-system-arm",
    "aarch64-linux-gnu-as": "binutils-aarch64-linux-gnu",
    "aarch64-linux-gnu-ld": "binutils-aarch64-linux-gnu",
}
_TIMEOUT = 10.0


class PeerUnavailable(RuntimeError):
    """QEMU or the cross binutils are missing, or QEMU did not come up."""


def missing_tools() -> str | None:
    """None when every tool is installed; else what to install, in one sentence."""
    missing = sorted({pkg for tool, pkg in _TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return None
    return (f"the QEMU differential test needs the Debian package(s) {', '.join(missing)} "
            f"(run ./bootstrap as root, or: apt-get install {' '.join(missing)})")


def qemu_version() -> str:
    """``qemu-system-aarch64 --version``'s first line, e.g. "QEMU emulator version 7.2.22"."""
    out = subprocess.run(["qemu-system-aarch64", "--version"], capture_output=True, text=True,
                         check=True, timeout=_TIMEOUT)
    return out.stdout.splitlines()[0].strip()


def build_agent(workdir: Path, cpus: int) -> Path:
    """Assemble and link the agent for ``cpus`` PEs; returns the ELF."""
    table = "".join(f"    {kind} {'x0, ' + reg.lower() if kind == 'mrs' else reg.lower() + ', x3'}"
                    "\n    b done\n" for kind, reg in _OPS)
    (workdir / "table.S").write_text(table)
    obj, elf = workdir / "agent.o", workdir / "agent.elf"
    for argv in (
        ["aarch64-linux-gnu-as", "-I", str(workdir), f"--defsym=NCPUS={cpus}",
         f"--defsym=NOPS={len(_OPS)}", f"--defsym=MBOX_BASE={MBOX_BASE}",
         "-o", str(obj), str(HERE / "agent.S")],
        ["aarch64-linux-gnu-ld", f"-Ttext={AGENT_BASE:#x}", "-e", "_start", "-o", str(elf),
         str(obj)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=_TIMEOUT)
        if done.returncode:
            raise PeerUnavailable(f"{argv[0]} failed building the agent: {done.stderr.strip()}")
    return elf


class QemuGic:
    """One QEMU process: a ``virt`` board with ``cpus`` PEs, a GICv3 and no ITS."""

    def __init__(self, cpus: int) -> None:
        problem = missing_tools()
        if problem is not None:
            raise PeerUnavailable(problem)
        self.cpus = cpus
        self.version = qemu_version()
        self.commands = 0
        self._dir = Path(tempfile.mkdtemp(prefix="directlpi-qemu-"))
        elf = build_agent(self._dir, cpus)
        self._log = open(self._dir / "qemu.log", "w")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            ["qemu-system-aarch64", "-M", "virt,gic-version=3,its=off", "-cpu", "max",
             "-smp", str(cpus), "-accel", "tcg", "-m", f"{RAM_SIZE >> 20}M",
             "-display", "none", "-nodefaults", "-qtest", "stdio", "-kernel", str(elf),
             "-d", "guest_errors"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            bufsize=1, env={**os.environ, "LC_ALL": "C"})
        self._seq = [0] * cpus
        try:
            self._boots = [0] * cpus
            self._wait_boot()
        except BaseException:
            self.close()
            raise

    # -- qtest -------------------------------------------------------------------------

    def _cmd(self, line: str) -> str:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        self.commands += 1
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        while True:
            reply = proc.stdout.readline()
            if not reply:
                raise PeerUnavailable(f"QEMU exited during qtest command {line!r} "
                                      f"(log: {self._dir / 'qemu.log'})")
            if reply.startswith("OK"):
                return reply[3:].strip()
            if reply.startswith(("FAIL", "ERR")):
                raise PeerUnavailable(f"qtest refused {line!r}: {reply.strip()}")

    def read(self, addr: int, size: int) -> int:
        """A load of ``size`` bytes (1, 2, 4, 8) from physical address ``addr``."""
        op = {1: "readb", 2: "readw", 4: "readl", 8: "readq"}[size]
        return int(self._cmd(f"{op} {addr:#x}"), 16)

    def write(self, addr: int, value: int, size: int) -> None:
        """A store of ``size`` bytes of ``value`` to physical address ``addr``."""
        op = {1: "writeb", 2: "writew", 4: "writel", 8: "writeq"}[size]
        self._cmd(f"{op} {addr:#x} {value:#x}")

    def fill(self, addr: int, length: int, byte: int) -> None:
        self._cmd(f"memset {addr:#x} {length:#x} {byte:#x}")

    # -- the agent ------------------------------------------------------------------------

    def _mbox(self, cpu: int) -> int:
        return MBOX_BASE + cpu * MBOX_STRIDE

    def _run(self, cpu: int, op: int, value: int = 0) -> tuple[int, int]:
        mbox = self._mbox(cpu)
        self._seq[cpu] += 1
        seq = self._seq[cpu]
        data = op.to_bytes(8, "little") + value.to_bytes(8, "little")
        self._cmd(f"write {mbox:#x} 0x10 0x{data.hex()}")
        self._cmd(f"writeq {mbox + _SEQ:#x} {seq:#x}")
        deadline = time.monotonic() + _TIMEOUT
        while True:
            raw = bytes.fromhex(self._cmd(f"read {mbox + _RESULT:#x} 0x18")[2:])
            if int.from_bytes(raw[16:24], "little") == seq:
                return int.from_bytes(raw[0:8], "little"), int.from_bytes(raw[8:16], "little")
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"the agent on PE {cpu} did not answer command {op}")

    def read_sysreg(self, cpu: int, name: str) -> int | str:
        """MRS of ``name`` on PE ``cpu``: its value, or UNDEF if the access trapped."""
        result, status = self._run(cpu, _OP_INDEX["mrs", name])
        return UNDEF if status else result

    def write_sysreg(self, cpu: int, name: str, value: int) -> str:
        """MSR of ``name`` on PE ``cpu``: "ok", or UNDEF if the access trapped."""
        _result, status = self._run(cpu, _OP_INDEX["msr", name], value)
        return UNDEF if status else "ok"

    def _wait_boot(self) -> None:
        deadline = time.monotonic() + _TIMEOUT
        for cpu in range(self.cpus):
            addr = self._mbox(cpu) + _BOOTS
            while (boots := self.read(addr, 8)) <= self._boots[cpu]:
                if time.monotonic() > deadline:
                    raise PeerUnavailable(f"the agent did not start on PE {cpu} "
                                          f"(log: {self._dir / 'qemu.log'})")
            self._boots[cpu] = boots
            self._seq[cpu] = self.read(self._mbox(cpu) + _SEQ, 8)

    def reset(self) -> None:
        """System reset (PSCI SYSTEM_RESET from PE 0); returns once every PE's agent runs."""
        mbox = self._mbox(0)
        self._seq[0] += 1
        data = _RESET_OP.to_bytes(8, "little") + bytes(8)
        self._cmd(f"write {mbox:#x} 0x10 0x{data.hex()}")
        self._cmd(f"writeq {mbox + _SEQ:#x} {self._seq[0]:#x}")
        self._wait_boot()

    def guest_errors(self) -> str:
        """What QEMU logged with ``-d guest_errors`` so far."""
        self._log.flush()
        return (self._dir / "qemu.log").read_text()

    def close(self) -> None:
        """Stop QEMU (it does not exit at the end of its qtest input while TCG runs)."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> QemuGic:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
