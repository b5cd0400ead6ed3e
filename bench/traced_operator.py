"""`python -m mlops_operator` under tracemalloc, for the soak (not shipped): where the Python heap grows.

SIGUSR1 writes the traced heap size (bytes) to `$MLOPS_TRACE_DIR/heap`; SIGUSR2 dumps a snapshot to
`$MLOPS_TRACE_DIR/snapshot-<n>`; SIGHUP writes `$MLOPS_TRACE_DIR/holders`: how many Kubernetes bodies and
watch events are alive and what holds a sample of them (tracemalloc says where memory was allocated, not
who keeps it). Signals, not an endpoint, so the operator's own code is not touched.
"""

from __future__ import annotations

import gc
import itertools
import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = 12


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        keys = sorted(map(str, obj))[:6]
        return f"dict{keys}"
    if isinstance(obj, (list, tuple, set)):
        return f"{type(obj).__name__}[{len(obj)}]"
    if isinstance(obj, FrameType):
        return f"frame {obj.f_code.co_filename.rsplit('/', 2)[-1]}:{obj.f_lineno} {obj.f_code.co_name}"
    return type(obj).__qualname__


def holders_report(sample: int = 12, depth: int = 5) -> str:
    """Live bodies and watch events, and the referrer chain of a sample of them."""
    gc.collect()
    bodies = [o for o in gc.get_objects() if isinstance(o, dict) and "metadata" in o and "apiVersion" in o]
    events = [o for o in gc.get_objects() if isinstance(o, dict) and "type" in o and isinstance(o.get("object"), dict)]
    lines = [f"bodies {len(bodies)}, watch events {len(events)}"]
    # kopf's per-object streams and its per-kind schedulers: pending workers hold their streams' events.
    from kopf._cogs.aiokits.aiotasks import Scheduler
    from kopf._core.reactor.queueing import Stream

    streams = [o for o in gc.get_objects() if isinstance(o, Stream)]
    queued = sum(s.backlog.qsize() for s in streams)
    schedulers = [o for o in gc.get_objects() if isinstance(o, Scheduler)]
    load = [(len(x._running_tasks), x._pending_coros.qsize()) for x in schedulers]
    lines.append(f"kopf streams {len(streams)} holding {queued} events; schedulers (running, pending) {load}")
    # Where every task waits: the innermost frame of its await chain (get_stack() shows only the outermost).
    import asyncio
    from collections import Counter

    def chain_of(task: asyncio.Task[object]) -> list[FrameType]:
        frames, coro = [], task.get_coro()
        while coro is not None:
            frame = (
                getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
            )
            if frame is not None:
                frames.append(frame)
            coro = (
                getattr(coro, "cr_await", None)
                or getattr(coro, "gi_yieldfrom", None)
                or getattr(coro, "ag_await", None)
            )
        return frames

    def where(frame: FrameType) -> str:
        return f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_name}"

    waits: Counter[str] = Counter()
    for task in asyncio.all_tasks(asyncio.get_running_loop()):
        frames = chain_of(task)
        mine = [where(f) for f in frames if "mlops_operator" in f.f_code.co_filename]
        innermost = where(frames[-1]) if frames else "?"
        waits[" > ".join([*mine[-3:], innermost]) if mine else innermost] += 1
    lines += [f"{n} tasks at {place}" for place, n in waits.most_common()]
    from mlops_operator.controllers.runtime import runtime

    locked = {key: len(lock._waiters or ()) for key, lock in runtime().locks.items() if lock.locked()}
    lines.append(f"locks {len(runtime().locks)}, locked {len(locked)}: {sorted(locked.items())[:20]}")
    picked = events[: sample // 2] + bodies[: sample // 2]
    for obj in picked:
        chain, current, seen = [], obj, {id(bodies), id(events), id(picked), id(streams)}
        for _ in range(depth):
            referrers = [r for r in gc.get_referrers(current) if id(r) not in seen and r is not picked]
            if not referrers:
                break
            current = referrers[0]
            seen.add(id(current))
            chain.append(_describe(current))
        lines.append(f"{_describe(obj)} <- " + " <- ".join(chain))
    return "\n".join(lines)


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

    def holders(_signum: int, _frame: FrameType | None) -> None:
        (out / "holders.tmp").write_text(holders_report())
        (out / "holders.tmp").replace(out / "holders")

    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGHUP, holders)
    signal.signal(signal.SIGUSR1, heap)
    signal.signal(signal.SIGUSR2, snapshot)
    sys.argv = ["mlops_operator", *sys.argv[1:]]
    runpy.run_module("mlops_operator", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
