"""kopf settings and the `mlops-operator run` entry point."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ..api import GROUP

FIELD_MANAGER = "mlops-operator"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations under our prefix: status is ours, and strictly typed."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Watch streams are known to go silent; restart any stream idle past these bounds (< 90 s).
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 75
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.INFO
    settings.networking.request_timeout = 30
    settings.execution.max_workers = 8
    # kopf's HTTP connector has no connection limit: unbounded workers would open one TLS connection
    # per object at startup (1,000 objects: ~400 MiB RSS and a burst at the API server).
    settings.queueing.worker_limit = 32
    # A worker holds its slot this long after its object's last event. Handlers only enqueue (microseconds), so
    # the slot's idling is the limit: 32 slots / 0.5 s passed 64 objects/s, and 10,000 objects' first events
    # waited minutes in kopf's per-object queues, full bodies and all (RSS past 450 MiB).
    settings.queueing.idle_timeout = 0.02
    settings.posting.worker_limit = 4


def run_operator(
    namespaces: list[str],
    liveness: str = "http://0.0.0.0:8080/healthz",
    metrics_port: int = 9090,
) -> None:
    """Run every controller until interrupted; all namespaces unless some are named."""
    from . import memprofile

    memprofile.enable_from_env()
    from . import metrics, registry  # importing registry registers every handler
    from .leader import ElectionSettings
    from .runtime import watch_namespaces

    watch_namespaces(namespaces)
    try:  # a bad setting stops the start here, not in a startup handler kopf would retry forever
        registry.use_election(ElectionSettings.from_env(namespaces))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error

    kopf.configure(verbose=False)  # INFO logs to stderr, as `kopf run` would set up
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns what matters
    # kopf logs "Handler ... succeeded" for every watch event of every object (10,000 lines at each start);
    # its warnings and errors still show, and our controllers log what they change.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics.serve(metrics_port)
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        # Replicas coordinate through our own Lease (controllers/leader.py). kopf peering would pause
        # every replica of equal priority, and it does not stop the operator's own timers.
        standalone=True,
        liveness_endpoint=liveness,
    )
