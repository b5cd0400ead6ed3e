"""An opt-in heap profile: `MLOPS_HEAP_PROFILE=FILE`, then SIGUSR1 writes where the memory is to FILE.

Python has no heap profiler a running process can be attached to, so this is built in and off unless asked
for (bench/operator_scale.py --heap-profile uses it to say where the memory per object goes). The dump counts
the live objects the garbage collector tracks, by type with their shallow sizes (cheap: no tracing); with
`MLOPS_TRACEMALLOC_FRAMES=N` it also traces allocations from the start and adds the top allocation sites
(slows the operator several times over).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

ENV = "MLOPS_HEAP_PROFILE"
FRAMES_ENV = "MLOPS_TRACEMALLOC_FRAMES"
TOP = 40


def enable_from_env() -> None:
    """Install the SIGUSR1 dump if MLOPS_HEAP_PROFILE names a file (and trace allocations if asked to)."""
    target = os.environ.get(ENV)
    if not target:
        return
    frames = int(os.environ.get(FRAMES_ENV) or 0)
    if frames > 0:
        tracemalloc.start(frames)
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: dump(Path(target)))


def by_type() -> list[str]:
    """Lines of live gc-tracked objects by type: shallow MiB, count, type, most memory first."""
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        sizes[name] += sys.getsizeof(obj)
        counts[name] += 1
    return [f"{size / 2**20:8.2f} MiB {counts[name]:>9} {name}" for name, size in sizes.most_common(TOP)]


def dump(target: Path) -> None:
    """Write the objects by type and, while tracing, the top allocation sites to `target`."""
    lines = ["live objects by type (shallow size; strings and numbers inside them are not gc-tracked):"]
    lines += by_type()
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, tracemalloc.__file__),))
        current, peak = tracemalloc.get_traced_memory()
        lines += ["", f"traced {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB); by line:"]
        top = snapshot.statistics("lineno")[:TOP]
        lines += [f"{stat.size / 2**20:8.2f} MiB {stat.count:>9} {stat.traceback[0]}" for stat in top]
        lines += ["", "by allocating stack:"]
        for stat in snapshot.statistics("traceback")[:15]:
            lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:>9}")
            lines += [f"      {frame}" for frame in stat.traceback]
    target.write_text("\n".join(lines) + "\n")
