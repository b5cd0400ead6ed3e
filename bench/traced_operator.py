"""`python -m mlops_operator` under tracemalloc, for the soak (not shipped): where the Python heap grows.

SIGUSR1 writes the traced heap size (bytes) to `$MLOPS_TRACE_DIR/heap`; SIGUSR2 dumps a snapshot to
`$MLOPS_TRACE_DIR/snapshot-<n>`. Signals, not an endpoint, so the operator's own code is not touched.
"""

from __future__ import annotations

import itertools
import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = 12


def main() -> None:
    out = Path(os.environ["MLOPS_TRACE_DIR"])
    dumps = itertools.count(1)

    def heap(_signum: int, _frame: FrameType | None) -> None:
        (out / "heap.tmp").write_text(str(tracemalloc.get_traced_memory()[0]))
        (out / "heap.tmp").replace(out / "heap")

    def snapshot(_signum: int, _frame: FrameType | None) -> None:
        n = next(dumps)
        tracemalloc.take_snapshot().dump(str(out / f"snapshot-{n}.tmp"))
        (out / f"snapshot-{n}.tmp").replace(out / f"snapshot-{n}")

    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, heap)
    signal.signal(signal.SIGUSR2, snapshot)
    sys.argv = ["mlops_operator", *sys.argv[1:]]
    runpy.run_module("mlops_operator", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
