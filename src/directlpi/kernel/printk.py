"""The kernel log (``dmesg``): boot messages a kernel engineer would recognise, and WARNs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LogLine:
    level: str
    """"info", "warn" or "err"."""
    text: str

    def __str__(self) -> str:
        prefix = {"warn": "WARNING: ", "err": "ERROR: "}.get(self.level, "")
        return prefix + self.text


@dataclass
class Log:
    """An append-only ring of :class:`LogLine` (unbounded: runs are finite)."""

    lines: list[LogLine] = field(default_factory=list)

    def info(self, text: str) -> None:
        self.lines.append(LogLine("info", text))

    def warn(self, text: str) -> None:
        self.lines.append(LogLine("warn", text))

    def err(self, text: str) -> None:
        self.lines.append(LogLine("err", text))

    def warnings(self) -> list[str]:
        return [ln.text for ln in self.lines if ln.level == "warn"]

    def grep(self, needle: str) -> list[str]:
        return [ln.text for ln in self.lines if needle in ln.text]

    def __str__(self) -> str:
        return "\n".join(str(ln) for ln in self.lines)
