"""The opt-in heap profile: off by default; with MLOPS_TRACEMALLOC set, SIGUSR1 writes the top allocation sites."""

from __future__ import annotations

import os
import signal
import tracemalloc
from pathlib import Path

import pytest
from mlops_operator.controllers import memprofile


class Marker:
    """A type of this test's own, to find in the counts."""


def test_nothing_is_traced_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memprofile.ENV, raising=False)
    monkeypatch.setenv(memprofile.FRAMES_ENV, "4")
    memprofile.enable_from_env()
    assert not tracemalloc.is_tracing() and signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_sigusr1_writes_where_the_memory_went(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "heap.txt"
    monkeypatch.setenv(memprofile.ENV, str(target))
    monkeypatch.setenv(memprofile.FRAMES_ENV, "1")
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        memprofile.enable_from_env()
        held = [bytearray(1024) for _ in range(4096)]  # 4 MiB from this line
        kept = [Marker() for _ in range(20000)]  # ~1 MiB of them: among the top types
        os.kill(os.getpid(), signal.SIGUSR1)
        text = target.read_text()
    finally:
        tracemalloc.stop()
        signal.signal(signal.SIGUSR1, previous)
    assert len(held) == 4096 and len(kept) == 20000
    counted = next(line for line in text.splitlines() if line.endswith(".Marker"))
    assert int(counted.split()[2]) == 20000
    top = text.split("by line:\n", 1)[1].splitlines()[0]
    assert "test_memprofile.py" in top and float(top.split()[0]) >= 4.0
