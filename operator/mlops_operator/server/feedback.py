"""Feedback: true labels for signed prediction ids, counted into Prometheus by the version and track in each id.

`POST /v2/models/{name}/feedback` (and `POST /feedback`, next to /invocations) takes

    {"feedback": [{"id": "<a prediction id>", "label": <the true class, or the true value>}, ...]}

A body that is not such an object (not JSON, no list, too many items) is refused whole with a 4xx
naming the problem. Otherwise every item is judged on its own and the answer is 200 with

    {"accepted": 2, "rejected": [{"index": 1, "reason": "expired", "message": "..."}]}

so that one stale id does not cost a client its whole batch; a refused item can be sent again once
fixed (an id is only remembered once its label was counted). Reasons: see REASONS.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from ..profile import OTHER_BIN
from .config import ENV_FEEDBACK_KEY, ServerConfig
from .limits import header
from .metrics import FeedbackMetrics
from .model import LoadedModel
from .predictionids import (
    KIND_VALUE,
    MALFORMED,
    SIGNATURE,
    IdError,
    IdSigner,
    PredictionId,
    key_bytes,
    label_digest,
    label_text,
)
from .protocol_v2 import DEFAULT_OUTPUT, ID_OUTPUT
from .schema import InputError

log = logging.getLogger("mlops_operator.server")

NOT_CONFIGURED = f"feedback is not configured for this server (no {ENV_FEEDBACK_KEY})"
IDS_HEADER = b"x-prediction-ids"  # comma-separated, only while it fits MAX_HEADER_BYTES
# A request turns its ids off with the header `X-Prediction-Ids: none` (either protocol), or with the parameter
# "prediction_ids": false (OIP `parameters`, MLflow /invocations `params`): ids cost 15-40% on batches of 100
# rows, which a client that never sends labels need not pay. Ids cannot be turned on this way, only off.
IDS_OFF = b"none"
IDS_PARAMETER = "prediction_ids"
MAX_HEADER_BYTES = 4096  # proxies refuse responses with headers of 8 KiB and more
FUTURE_SKEW_S = 60.0  # ids issued up to this far ahead of this server's clock are taken
MAX_LABEL_CHARS = 1024
# Larger errors are refused: the squared-error counter must not overflow to +Inf (1e200 per label leaves room).
MAX_ERROR = 1e100
JUDGE_CHUNK = 256  # labels judged between two turns of the event loop
# The confusion counters name at most this many of a model's classes (its first, in classes_ order); labels and
# predictions of the others are counted under OTHER_BIN, so a label is never lost for the cap (its correct or
# incorrect outcome counts as is). Why 20: the confusion is classes^2 series per version and track, times every
# pod that reports them; 20 classes are at most 21^2 = 441 series (with OTHER_BIN), 100 were 10,201, enough
# per pod and version to weigh on a Prometheus shared by many Deployments. The diagonal stays the correct
# predictions: a wrong prediction between two classes beyond the cap has OTHER_INCORRECT as its predicted class.
MAX_CLASSES = 20
OTHER_INCORRECT = "__other_incorrect__"
ITEM_FIELDS = ("id", "label")

EXPIRED = "expired"  # issued longer ago than the max age
FUTURE = "future"  # issued later than now + FUTURE_SKEW_S
DUPLICATE = "duplicate"  # this worker already counted a label for the id
REPLAY_WINDOW = "replay_window"  # older than what this worker still remembers (ReplayGuard)
LABEL = "label"  # the label does not fit the prediction
UNKNOWN_CLASS = "unknown_class"  # a classifier's label names none of the model's classes
BODY = "body"  # the whole request was refused (one count per request)
OVERLOADED = "overloaded"  # the whole request was shed, 503 (one count per request)
REASONS = (MALFORMED, SIGNATURE, EXPIRED, FUTURE, DUPLICATE, REPLAY_WINDOW, LABEL, UNKNOWN_CLASS, BODY, OVERLOADED)


class FeedbackError(Exception):
    """The request is refused as a whole: `status` 4xx, `message` names the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


MIN_BUCKET_S = 60  # the replay guard's buckets of issue time: a minute, or longer for long max ages
MAX_BUCKETS = 1024  # ... so that at most this many buckets span the max age (7 days: 591 s buckets)
MERGE_AT = 4096  # digests the replay guard keeps in sets before merging them into its sorted arrays
_NO_DIGESTS = np.empty(0, dtype=np.uint64)


class _Bucket:
    """The digests of one bucket's ids: sorted in an array, the latest in a set until merged."""

    __slots__ = ("digests", "pending")

    def __init__(self) -> None:
        self.digests = _NO_DIGESTS
        self.pending: set[int] = set()

    def holds(self, key: int) -> bool:
        if key in self.pending:
            return True
        digests = self.digests
        if not digests.size:
            return False
        wanted = np.uint64(key)
        at = int(digests.searchsorted(wanted))
        return at < digests.size and bool(digests[at] == wanted)

    def merge(self) -> None:
        new = np.sort(np.fromiter(self.pending, dtype=np.uint64, count=len(self.pending)))
        self.digests = np.insert(self.digests, self.digests.searchsorted(new), new)  # none of them is there yet
        self.pending = set()

    def __len__(self) -> int:
        return len(self.digests) + len(self.pending)


class ReplayGuard:
    """Ids one worker has counted a label for, remembered until they are too old to be taken anyway.

    An id is remembered as a 64-bit digest: the first 8 bytes of its tag, a MAC and so uniformly spread (a
    false duplicate among the n ids of one bucket has a chance of n^2 / 2^65: 7e-9 for 500,000). Digests are
    kept by bucket of issue time (MIN_BUCKET_S, or max age / MAX_BUCKETS when that is longer); a bucket wholly
    older than the max age is forgotten (its ids are refused as expired). Within a bucket the digests are a
    sorted numpy uint64 array, 8 bytes an id, and the latest ones a set, merged into the arrays once MERGE_AT
    are pending: a lookup is a set test and a binary search.

    Bounded: at most `capacity` ids, in 8 x capacity bytes of arrays (4 MB for 500,000; twice that for an
    instant while the largest bucket merges), plus at most MERGE_AT pending digests (≈ 0.3 MB) and per bucket
    ≈ 0.3 KB. When more ids would be remembered, the oldest bucket is forgotten and every id issued in or
    before it is refused from then on (REPLAY_WINDOW): one worker never counts a label twice, at the price
    of refusing late labels when more are sent within the max age than it holds.
    """

    def __init__(self, capacity: int, max_age_s: float) -> None:
        self.capacity = capacity
        self.max_age_s = max_age_s
        self.bucket_s = max(MIN_BUCKET_S, math.ceil(max_age_s / MAX_BUCKETS))
        self.floor = -1  # ids issued at or before this second are refused
        self.size = 0
        self.pending = 0
        self._buckets: dict[int, _Bucket] = {}
        self._order: list[int] = []  # a heap of the bucket numbers

    def admit(self, tag: bytes, issued: int, now: float) -> str | None:
        """Remember the id and return None, or the reason it cannot be counted (again)."""
        horizon = now - self.max_age_s
        while self._order and (self._order[0] + 1) * self.bucket_s <= horizon:
            self._drop()
        if issued <= self.floor:
            return REPLAY_WINDOW
        key = int.from_bytes(tag[:8], "big")
        number = issued // self.bucket_s
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = _Bucket()
            heapq.heappush(self._order, number)
        elif bucket.holds(key):
            return DUPLICATE
        bucket.pending.add(key)
        self.size += 1
        self.pending += 1
        while self.size > self.capacity:
            self.floor = max(self.floor, (self._drop() + 1) * self.bucket_s - 1)
        if self.pending >= MERGE_AT:
            for held in self._buckets.values():
                if held.pending:
                    held.merge()
            self.pending = 0
        return None

    def _drop(self) -> int:
        number = heapq.heappop(self._order)
        bucket = self._buckets.pop(number)
        self.size -= len(bucket)
        self.pending -= len(bucket.pending)
        return number


@dataclass
class Tally:
    """One request's labels, counted into Prometheus once per label set (not once per label)."""

    classes: Counter[tuple[str, str, str, str, bool]] = field(default_factory=Counter)  # version, track, classes
    errors: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (version, track): prediction - label
    rejected: Counter[str] = field(default_factory=Counter)

    def count_into(self, metrics: FeedbackMetrics) -> None:
        """Add the tally to the counters."""
        for (version, track, true_class, predicted_class, correct), count in self.classes.items():
            metrics.classified(version, track, true_class, predicted_class, correct, count)
        for (version, track), errors in self.errors.items():
            metrics.regressed(version, track, errors)
        for reason, count in self.rejected.items():
            metrics.rejected(reason, count)


@dataclass(frozen=True)
class Classes:
    """A classifier's classes as label texts: all of them (None: unknown), those the confusion counters name
    (the first MAX_CLASSES; others are OTHER_BIN), and every class by the digest a long label is carried as."""

    texts: frozenset[str] | None
    confusion: frozenset[str]
    digests: dict[bytes, str]

    @classmethod
    def of(cls, classes: tuple[Any, ...] | None) -> Classes:
        if classes is None:
            return cls(None, frozenset(), {})
        texts = [t for t in (label_text(c) for c in classes) if t is not None]
        return cls(frozenset(texts), frozenset(texts[:MAX_CLASSES]), {label_digest(t): t for t in texts})


@dataclass(frozen=True)
class FeedbackSettings:
    """How old a labelled prediction may be, how many labels a request carries, how many ids are remembered."""

    max_age_s: float
    max_items: int
    replay_size: int
    future_skew_s: float = FUTURE_SKEW_S


def split_requested(requested: list[str] | None) -> tuple[list[str] | None, bool]:
    """The OIP outputs to compute without the id output, and whether ids are wanted (all outputs, or named)."""
    if requested is None:
        return None, True
    if ID_OUTPUT not in requested:
        return requested, False
    rest = [name for name in requested if name != ID_OUTPUT]
    # The ids sign the predicted values, so predict runs (and is returned) whenever ids are asked for.
    return (rest if DEFAULT_OUTPUT in rest else [DEFAULT_OUTPUT, *rest]), True


def ids_turned_off(headers: list[tuple[bytes, bytes]], parameters: Any, where: str) -> bool:
    """Whether a request turns its ids off (IDS_OFF, IDS_PARAMETER); InputError (400) for another value of either.

    Checked whether or not this server mints ids, so that a request is refused or taken alike by every server."""
    off = False
    value = header(headers, IDS_HEADER)
    if value is not None:
        if value.strip().lower() != IDS_OFF:
            shown = value[:40].decode("latin-1")
            raise InputError(f"the request header X-Prediction-Ids takes 'none', got {shown!r}", status=400)
        off = True
    if isinstance(parameters, dict) and IDS_PARAMETER in parameters:
        wanted = parameters[IDS_PARAMETER]
        if not isinstance(wanted, bool):
            name = f"{where}.{IDS_PARAMETER}"
            raise InputError(f"'{name}' must be true or false (false: no ids)", status=400, field=name)
        off = off or not wanted
    return off


def ids_header(ids: list[str]) -> list[tuple[bytes, bytes]]:
    """The X-Prediction-Ids header while it stays small (the body always carries every id)."""
    if sum(len(i) + 1 for i in ids) > MAX_HEADER_BYTES:
        return []
    return [(IDS_HEADER, ",".join(ids).encode("ascii"))]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class Feedback:
    """Mints the ids of a worker's predictions and counts the labels sent for them."""

    def __init__(
        self,
        signer: IdSigner,
        settings: FeedbackSettings,
        track: str,
        metrics: FeedbackMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.settings = settings
        self.track = track
        self.metrics = metrics
        self.clock = clock
        self.replay = ReplayGuard(settings.replay_size, settings.max_age_s)
        self._logged: set[type[BaseException]] = set()  # kinds of minting failure logged already
        self._classes: tuple[int, Classes] = (0, Classes(None, frozenset(), {}))

    @classmethod
    def from_config(cls, config: ServerConfig, model_name: str, metrics: FeedbackMetrics | None) -> Feedback | None:
        """Feedback when a key is configured, else None (no ids, and /feedback answers 409)."""
        if not config.feedback_key:
            return None
        signer = IdSigner(
            key_bytes(config.feedback_key),
            key_bytes(config.feedback_key_previous) if config.feedback_key_previous else None,
            namespace=config.namespace,
            deployment=config.deployment,
            model=model_name,
        )
        settings = FeedbackSettings(config.feedback_max_age_s, config.feedback_max_items, config.feedback_replay_size)
        return cls(signer, settings, config.track, metrics)

    # -- ids -----------------------------------------------------------------------------------------
    def ids(self, model: LoadedModel, outputs: list[tuple[str, np.ndarray]]) -> list[str] | None:
        """One id per predicted row, or None when the outputs hold no one-value-per-row `predict`."""
        predicted = [array for name, array in outputs if name == DEFAULT_OUTPUT]
        if len(predicted) != 1:
            return None
        values = predicted[0]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values.reshape(-1)
        if values.ndim != 1:
            return None
        labels = model.classes is not None or values.dtype.kind != "f"
        try:
            return self.signer.mint(model.version, self.track, values, self.clock(), labels=labels)
        except Exception as error:
            # A prediction never fails because of its id: whatever minting trips on (a version name over 255
            # bytes, a prediction that is not hashable or not packable, a clock past 2106: ValueError, TypeError,
            # struct.error, OverflowError...), the prediction is answered without ids. Not with fallback ids: an
            # id is the signed prediction and a label is judged against the prediction it carries, so an id
            # without one could never be counted. The client sees no ids; the rows are counted
            # (METRIC_PREDICTION_IDS_FAILED) and each kind of failure is logged once, not once per request.
            if self.metrics is not None:
                self.metrics.ids_failed(len(values))
            if type(error) not in self._logged:
                self._logged.add(type(error))
                log.warning("predictions are answered without ids: minting failed: %s: %s", type(error).__name__, error)
            return None

    # -- labels --------------------------------------------------------------------------------------
    async def handle(self, raw: bytes, model: LoadedModel) -> bytes:
        """The answer to a feedback body (200); FeedbackError refuses the request as a whole.

        Labels are judged on the event loop (≈ 6-15 us each), JUDGE_CHUNK at a time between which predictions
        run: 10,000 labels would otherwise hold the loop for 60-150 ms."""
        try:
            items = self._items(raw)
        except FeedbackError:
            if self.metrics is not None:
                self.metrics.rejected(BODY)
            raise
        now = self.clock()
        classes = self._known(model)
        rejected: list[dict[str, Any]] = []
        tally = Tally()
        for index, item in enumerate(items):
            if index and not index % JUDGE_CHUNK:
                await asyncio.sleep(0)
            refused = self._judge(item, now, classes, tally)
            if refused is not None:
                reason, message = refused
                tally.rejected[reason] += 1
                rejected.append({"index": index, "reason": reason, "message": message})
        if self.metrics is not None:
            tally.count_into(self.metrics)
        return orjson.dumps({"accepted": len(items) - len(rejected), "rejected": rejected})

    def _items(self, raw: bytes) -> list[Any]:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise FeedbackError(400, f"the body is not valid JSON: {error}") from error
        shape = 'a JSON object {"feedback": [{"id": ..., "label": ...}, ...]}'
        if not isinstance(payload, dict):
            raise FeedbackError(400, f"the body must be {shape}")
        unknown = [key for key in payload if key != "feedback"]
        if unknown:
            raise FeedbackError(400, f"unknown field '{unknown[0]:.40}'; the body must be {shape}")
        items = payload.get("feedback")
        if not isinstance(items, list):
            raise FeedbackError(400, f"'feedback' must be a list of {{id, label}} objects; the body must be {shape}")
        if not items:
            raise FeedbackError(422, "'feedback' has no items")
        if len(items) > self.settings.max_items:
            raise FeedbackError(413, f"{len(items)} feedback items exceed the limit of {self.settings.max_items}")
        return items

    def _known(self, model: LoadedModel) -> Classes:
        """The model's classes as label texts (kept until another model is served)."""
        if self._classes[0] != id(model):
            self._classes = (id(model), Classes.of(model.classes))
        return self._classes[1]

    def _judge(self, item: Any, now: float, classes: Classes, tally: Tally) -> tuple[str, str] | None:
        """None when the item's label was counted, else (reason, message)."""
        if not isinstance(item, dict) or "id" not in item or "label" not in item:
            return MALFORMED, 'an item is an object {"id": ..., "label": ...}'
        extra = [key for key in item if key not in ITEM_FIELDS]
        if extra:
            return MALFORMED, f"unknown field '{extra[0]:.40}'; an item has only 'id' and 'label'"
        try:
            pid = self.signer.verify(item["id"])
        except IdError as error:
            return error.reason, error.message
        age, limit = now - pid.issued, self.settings.max_age_s
        if age > limit:
            return EXPIRED, f"the prediction is {age / 3600:.1f} h old; labels are taken up to {limit / 3600:g} h"
        if -age > self.settings.future_skew_s:
            return FUTURE, f"the id was issued {-age:.0f} s ahead of this server's clock"
        label = item["label"]
        if pid.kind == KIND_VALUE:
            number = _number(label)
            if number is None:
                return LABEL, "a regression's label is a finite number"
            miss = float(pid.value or 0.0) - number
            if not abs(miss) <= MAX_ERROR:  # NaN too
                return LABEL, f"the error (prediction - label) is not a number within ±{MAX_ERROR:g}"
            refused = self._count(pid, now)
            if refused is None:
                tally.errors.setdefault((pid.version, pid.track), []).append(miss)
            return refused
        text = label_text(label)
        if text is None or len(text) > MAX_LABEL_CHARS:
            return LABEL, f"a class label is a string, number or boolean (at most {MAX_LABEL_CHARS} characters)"
        correct = text == pid.label if pid.label is not None else label_digest(text) == pid.label_digest
        # A label naming no class of the model is refused, not counted as a wrong prediction: it is a client's
        # mistake (a typo, another model's labels), and counted it would lower the accuracy. The predicted class is
        # one the id's version had, so a label equal to it is taken even if the model served here lacks it.
        if classes.texts is not None and text not in classes.texts and not correct:
            return UNKNOWN_CLASS, f"'{text:.40}' is not a class of the model (it has {len(classes.texts)})"
        predicted = pid.label if pid.label is not None else classes.digests.get(pid.label_digest or b"")
        refused = self._count(pid, now)
        if refused is None:
            known = classes.confusion
            true_class = text if text in known else OTHER_BIN
            predicted_class = predicted if predicted is not None and predicted in known else OTHER_BIN
            if true_class == predicted_class and not correct:  # two classes beyond the cap: off the diagonal
                predicted_class = OTHER_INCORRECT
            tally.classes[(pid.version, pid.track, true_class, predicted_class, correct)] += 1
        return refused

    def _count(self, pid: PredictionId, now: float) -> tuple[str, str] | None:
        reason = self.replay.admit(pid.tag, pid.issued, now)
        if reason == DUPLICATE:
            return reason, "a label for this id was counted already"
        if reason == REPLAY_WINDOW:
            return reason, "the id is older than what this server remembers of the ids it counted; send labels sooner"
        return None
