"""Helpers for tests that corrupt ACPI tables on purpose."""

from __future__ import annotations

import struct

from directlpi.firmware.acpi import checksum_fix


def rewrite(raw: bytes, off: int, fmt: str, value: int) -> bytes:
    """``raw`` with ``value`` packed as ``fmt`` at ``off`` and the checksum fixed again, so
    that the reader sees the field, not a bad checksum."""
    t = bytearray(raw)
    struct.pack_into(fmt, t, off, value)
    checksum_fix(t)
    return bytes(t)
