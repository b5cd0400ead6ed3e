"""`python -m mlops_operator.qualityreplay`: replay labelled streams through the quality decisions to see their errors.

Labels arrive as a Poisson process, each one correct with the model's accuracy (Bernoulli); the operator's
window counts are increases over the stream, judged exactly as the operator judges them (planning/quality.py).
- Monitoring: a window of `window` seconds every `interval`, PerformanceDegraded after `consecutive` windows
  below `minimum`. On an unchanged stream every degraded window is a false alarm; after a drop of accuracy,
  the delay is the time from the drop to the first degraded window.
- Canary: the rollout's loop (planning/rollout.py): a look every analysis interval over the step's labels, the
  canary getting its step's share; a pass ends the step once its pause is over, `failure_limit` failures abort,
  and no pass within pause + progress deadline aborts. A candidate that clears every step is promoted.
Deterministic: every figure comes from a seeded numpy Generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .planning.quality import ClassificationCounts, compare_accuracy, judge_performance
from .planning.qualitytests import max_looks, per_look_alpha

# Suggested defaults (docs/quality-signals.md): the dataclasses below. The operator's defaults live in the API models.
BASE_ACCURACY = 0.95


@dataclass(frozen=True)
class Monitoring:
    """The performance monitor's settings, as spec.monitoring.performance would carry them."""

    minimum: float = BASE_ACCURACY - 0.02  # the user's bound: 2 points below the model's usual accuracy
    window: float = 600.0
    interval: float = 60.0
    min_labels: int = 200
    consecutive: int = 3


@dataclass(frozen=True)
class Rollout:
    """The canary strategy and its builtin quality metric; alpha is per step, spent evenly over its looks."""

    interval: float = 30.0
    pause: float = 60.0
    deadline: float = 600.0
    failure_limit: int = 2
    steps: tuple[int, ...] = (10, 50)  # a 100 % step has no stable traffic to compare with (docs)
    max_degradation: float = 0.04
    alpha: float = 0.05
    min_labels: int = 200
    spend_alpha: bool = True  # False: every look at the full alpha, to see what the spending buys
    spend_fail_alpha: bool = False  # True: a fail also needs alpha / looks (slower to abort, no fewer holds)

    @property
    def looks(self) -> int:
        """Analyses a step can run before its deadline aborts it."""
        return max_looks(self.interval, self.pause, self.deadline)

    @property
    def look_alpha(self) -> float:
        """The significance of a pass at one look."""
        return per_look_alpha(self.alpha, self.looks) if self.spend_alpha else self.alpha


def _stream(rng: np.random.Generator, rate: float, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative labels and correct labels at each whole second (index 0 is time 0)."""
    labels = rng.poisson(rate, accuracy.size)
    correct = rng.binomial(labels, accuracy)
    zero = np.zeros(1, dtype=np.int64)
    return np.concatenate([zero, np.cumsum(labels)]), np.concatenate([zero, np.cumsum(correct)])


def _judge_stream(
    labels: np.ndarray, correct: np.ndarray, m: Monitoring, start: float = 0.0
) -> list[tuple[float, str]]:
    """(tick time, state) of each monitoring tick with a full window, from `start` on."""
    out: list[tuple[float, str]] = []
    run = 0
    window, t = int(m.window), m.window
    while t < labels.size:
        end = int(t)
        counts = ClassificationCounts(
            correct=float(correct[end] - correct[end - window]), total=float(labels[end] - labels[end - window])
        )
        verdict = judge_performance(
            counts,
            "accuracy",
            minimum=m.minimum,
            min_labels=m.min_labels,
            consecutive=m.consecutive,
            previous_consecutive=run,
        )
        run = verdict.consecutive
        if t >= start:
            out.append((t, verdict.state))
        t += m.interval
    return out


def false_alarm_rate(rate: float, m: Monitoring, hours: float = 24.0, streams: int = 4, seed: int = 0) -> float:
    """Share of judged windows that are PerformanceDegraded on streams whose accuracy never changes."""
    rng = np.random.default_rng(seed)
    degraded = judged = 0
    for _ in range(streams):
        labels, correct = _stream(rng, rate, np.full(int(hours * 3600), BASE_ACCURACY))
        states = [state for _, state in _judge_stream(labels, correct, m)]
        degraded += states.count("degraded")
        judged += len(states)
    return degraded / max(1, judged)


def detection_delays(rate: float, drop: float, m: Monitoring, trials: int = 200, seed: int = 0) -> list[float]:
    """Seconds from an accuracy drop (at a random phase of the interval) to PerformanceDegraded; inf if never."""
    rng = np.random.default_rng(seed)
    delays = []
    horizon = 4 * m.window  # a drop is caught within the window plus the consecutive ticks, or never
    for _ in range(trials):
        onset = m.window + float(rng.uniform(0.0, m.interval))
        accuracy = np.where(np.arange(int(onset + horizon)) < onset, BASE_ACCURACY, BASE_ACCURACY - drop)
        labels, correct = _stream(rng, rate, accuracy)
        hits = [t for t, state in _judge_stream(labels, correct, m, start=onset) if state == "degraded"]
        delays.append(hits[0] - onset if hits else math.inf)
    return delays


@dataclass
class CanaryOutcomes:
    """How the trials of one candidate ended."""

    promoted: int = 0
    failed: int = 0  # aborted by failureLimit failed analyses
    timed_out: int = 0  # aborted at the progress deadline with no pass
    promote_seconds: list[float] = field(default_factory=list)

    @property
    def trials(self) -> int:
        """Trials run."""
        return self.promoted + self.failed + self.timed_out

    @property
    def promoted_rate(self) -> float:
        """Share of trials that promoted the candidate."""
        return self.promoted / max(1, self.trials)


def _step(
    rng: np.random.Generator, rate: float, weight: int, p_stable: float, p_canary: float, r: Rollout, failures: int
) -> tuple[str, float, int]:
    """One canary step as the rollout runs it: ("passed" | "failed" | "timed_out", its seconds, failures so far)."""
    seconds = int(r.looks * r.interval) + 1
    share = weight / 100.0
    canary_n, canary_ok = _stream(rng, rate * share, np.full(seconds, p_canary))
    stable_n, stable_ok = _stream(rng, rate * (1.0 - share), np.full(seconds, p_stable))
    passed = False
    for look in range(1, r.looks + 1):
        t = look * r.interval
        i = min(int(t), seconds)
        verdict = compare_accuracy(
            ClassificationCounts(correct=float(canary_ok[i]), total=float(canary_n[i])),
            ClassificationCounts(correct=float(stable_ok[i]), total=float(stable_n[i])),
            max_degradation=r.max_degradation,
            alpha=r.look_alpha,
            min_labels=r.min_labels,
            fail_alpha=r.look_alpha if r.spend_fail_alpha else r.alpha,
        )
        failures += verdict.state == "fail"
        if failures >= max(1, r.failure_limit) and verdict.state == "fail":
            return "failed", t, failures
        passed = passed or verdict.state == "pass"
        if passed and t >= r.pause:
            return "passed", t, failures
    return "timed_out", r.looks * r.interval, failures


def canary_outcomes(
    rate: float, worse_by: float, r: Rollout, trials: int = 1000, seed: int = 0, p_stable: float = BASE_ACCURACY
) -> CanaryOutcomes:
    """Run the canary of a candidate `worse_by` points below stable `trials` times."""
    rng = np.random.default_rng(seed)
    out = CanaryOutcomes()
    for _ in range(trials):
        failures, elapsed, result = 0, 0.0, "passed"
        for weight in r.steps:
            result, seconds, failures = _step(rng, rate, weight, p_stable, p_stable - worse_by, r, failures)
            elapsed += seconds
            if result != "passed":
                break
        if result == "passed":
            out.promoted += 1
            out.promote_seconds.append(elapsed)
        elif result == "failed":
            out.failed += 1
        else:
            out.timed_out += 1
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < q * len(values):
        return math.inf
    return float(np.quantile(np.array(values, dtype=float), q, method="inverted_cdf"))


CANARY_HEADER = (
    "| labels/s | candidate | promoted | aborted: failed | aborted: deadline | median time to promote |",
    "|---|---|---|---|---|---|",
)


def _canary_row(label: str, rate: float, worse: float, r: Rollout, trials: int, seed: int) -> str:
    o = canary_outcomes(rate, worse, r, trials=trials, seed=seed)
    when = f"{np.median(o.promote_seconds):.0f} s" if o.promote_seconds else "-"
    name = "equal" if worse == 0 else f"{100 * worse:g} pts worse"
    return (
        f"| {label} | {name} | {100 * o.promoted_rate:.1f} % | {100 * o.failed / o.trials:.1f} % |"
        f" {100 * o.timed_out / o.trials:.1f} % | {when} |"
    )


def table(trials: int = 1000, seed: int = 0) -> str:
    """The measured figures with the suggested defaults, as docs/quality-signals.md quotes them."""
    m, r = Monitoring(), Rollout()
    lines = [
        f"Monitoring: accuracy {BASE_ACCURACY}, min {m.minimum:.2f}, window {m.window:g}s every {m.interval:g}s,"
        f" minLabels {m.min_labels}, consecutiveWindows {m.consecutive}",
        "| labels/s | false alarms (windows) | drop 5 pts: median / p90 delay | drop 10 pts: median / p90 delay |",
        "|---|---|---|---|",
    ]
    for rate in (1.0, 10.0):
        cells = [f"{100 * false_alarm_rate(rate, m, seed=seed):.2f} %"]
        for drop in (0.05, 0.10):
            d = detection_delays(rate, drop, m, trials=max(50, trials // 5), seed=seed)
            cells.append(f"{_quantile(d, 0.5):.0f} s / {_quantile(d, 0.9):.0f} s")
        lines.append(f"| {rate:g} | " + " | ".join(cells) + " |")
    by_gap = {
        points: false_alarm_rate(1.0, Monitoring(BASE_ACCURACY - points / 100), seed=seed) for points in (1, 2, 3)
    }
    gaps = ", ".join(f"min {points} pts below: {100 * rate:.2f} %" for points, rate in by_gap.items())
    lines += [
        f"False alarms at 1 label/s by the bound's distance from the usual accuracy: {gaps}",
        "",
        f"Canary: steps {'/'.join(map(str, r.steps))} %, interval {r.interval:g}s, pause {r.pause:g}s, deadline"
        f" {r.deadline:g}s ({r.looks} looks, alpha {r.alpha:g} per step = {r.look_alpha:.4f} per look),"
        f" maxDegradation {r.max_degradation:g}, minLabels {r.min_labels}, failureLimit {r.failure_limit}",
        *CANARY_HEADER,
    ]
    for rate in (1.0, 10.0):
        for worse in (0.0, 0.02, r.max_degradation, 0.05):
            lines.append(_canary_row(f"{rate:g}", rate, worse, r, trials, seed))
    lines += ["", "Other margins at 10 labels/s (the rest as above):", "", *CANARY_HEADER]
    for margin in (0.03, 0.05):
        other = Rollout(max_degradation=margin)
        for worse in (0.0, 0.02, 0.05):
            lines.append(_canary_row(f"10, maxDegradation {margin:g}", 10.0, worse, other, trials // 2, seed))
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
