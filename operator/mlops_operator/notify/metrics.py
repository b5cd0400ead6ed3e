"""The notifier's Prometheus metrics (served with the operator's own on `--metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LABELS = ["namespace", "policy", "destination"]

DELIVERED = Counter("mlops_operator_notifications_delivered_total", "Notifications a receiver accepted (2xx).", LABELS)
FAILED_ATTEMPTS = Counter(
    "mlops_operator_notification_failed_attempts_total",
    "Delivery attempts that failed, by why (connect, timeout, http_5xx, http_429, http_4xx, redirect).",
    [*LABELS, "reason"],
)
DROPPED = Counter(
    "mlops_operator_notifications_dropped_total",
    "Notifications given up: queue_full, retries_exhausted, rejected (a 4xx or redirect), not_allowed (URL), "
    "secret_missing, shutdown (still queued when the operator stopped).",
    ["reason"],
)
QUEUED = Gauge("mlops_operator_notification_queue_depth", "Notifications queued or waiting to retry.")
