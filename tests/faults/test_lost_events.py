"""A watch event the operator never sees: a serving track deleted while the operator is cut off from the API server.

What this test exercises, honestly: a DELETED event that is *missed*, not merely delayed.

* SIGSTOP/SIGCONT of the operator would only delay it: the API server writes the event into the
  operator's open watch connection, the kernel buffers it, and the resumed process reads it late.
* Cutting the connection alone would also only delay it: kopf resumes a broken watch from the last
  resourceVersion it saw, and the API server replays every later event from its watch cache.
* So the test cuts the operator's connections (ApiPartition, a loopback relay only this operator
  uses), deletes `iris-stable`, and restarts kube-apiserver. A new API server's watch cache starts at
  the current revision: a watch resumed from an older one is answered 410 Gone ("too old resource
  version"); the test checks exactly that with a resourceVersion it listed after the cut, which is no
  older than anything the operator saw. A LIST carries no DELETED events: the track is simply absent
  from it while the operator's store still holds it, Ready.

The planner applies only children whose spec hash differs from the store's view, so something must
notice the absence. The children's watch (controllers/childwatch.py) answers its 410 by listing the
collection into the store, which drops the track and wakes its owner; the periodic resync (every
MLOPS_RESYNC_SECONDS: relist, reconcile every object) is the backstop, so the test holds the
re-creation to one resync period after the heal. Leader election is off for this operator, because
regaining a lost Lease also relists (start_leading).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fixtures.cluster import Kube, wait_for
from tests.fixtures.faults import (
    ApiPartition,
    ComponentOutage,
    StatusRecorder,
    local_cluster_config,
    operator_for,
    ready_pods,
    serve_first_version,
    serving_deployment,
)

pytestmark = pytest.mark.cluster

RESYNC_SECONDS = 20
RECREATE_SLACK_SECONDS = 15.0  # the relist, the reconcile and the create after a resync tick
STAYS_HEALTHY_SECONDS = 15.0


def watch_from_expired(kube: Kube, namespace: str, resource_version: str) -> bool:
    """True when a watch of apps/v1 Deployments from `resource_version` is answered 410 Gone.

    Fails the test if the API server instead replays the DELETED event of the track: then the event
    could not be made to be missed, and this test would only exercise a delayed event.
    """
    path = (
        f"/apis/apps/v1/namespaces/{namespace}/deployments?watch=1&resourceVersion={resource_version}&timeoutSeconds=2"
    )
    result = kube.run("get", "--raw", path, check=False, timeout=30)
    for line in result.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "ERROR" and event.get("object", {}).get("code") == 410:
            return True
        if event.get("type") == "DELETED" and event["object"]["metadata"]["name"] == "iris-stable":
            raise AssertionError("the restarted API server replayed the DELETED event: it would reach the operator")
    return False


def stable_track(kube: Kube, namespace: str) -> dict | None:
    result = kube.run("get", "deployment.apps/iris-stable", "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.mark.outage
@pytest.mark.timeout(480)
def test_track_deleted_while_the_watch_was_cut_is_recreated_within_one_resync(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model, cfg = crds_installed, f"lost-{namespace}", local_cluster_config()
    partition = ApiPartition(kube, tmp_path)
    env = {
        "KUBECONFIG": str(partition.kubeconfig),
        "MLOPS_RESYNC_SECONDS": str(RESYNC_SECONDS),
        "MLOPS_LEADER_ELECTION": "false",
    }
    manifest = serving_deployment(model, [{"weight": 50, "pause": "10s"}, {"weight": 100}])
    try:
        with (
            operator_for(kube, namespace, tmp_path / "operator.log", extra_env=env) as op,
            ComponentOutage(cfg, "kube-apiserver") as api,
        ):
            rec = StatusRecorder(kube, namespace, op)
            v1 = serve_first_version(kube, namespace, model, manifest, rec)
            old = stable_track(kube, namespace)
            assert old is not None

            partition.cut()
            raw = kube.run("get", "--raw", f"/apis/apps/v1/namespaces/{namespace}/deployments").stdout
            listed = json.loads(raw)["metadata"]["resourceVersion"]  # (kubectl's own List has none)
            assert listed, raw[:500]
            kube.run("delete", "deployment.apps/iris-stable", "-n", namespace, "--wait=true")
            api.stop()
            api.start()
            wait_for(
                f"a watch from resourceVersion {listed} (before the deletion) to be answered 410 Gone",
                lambda: watch_from_expired(kube, namespace, listed),
                timeout=60,
                interval=1,
            )
            assert stable_track(kube, namespace) is None, (
                "something re-created the track while the operator was cut off"
            )
            partition.heal()
            healed = time.monotonic()

            recreated = wait_for(
                "the stable track to be re-created",
                lambda: stable_track(kube, namespace),
                timeout=RESYNC_SECONDS + RECREATE_SLACK_SECONDS + 15,
                interval=0.5,
            )
            delay = time.monotonic() - healed
            print(f"\npartition healed -> iris-stable re-created: {delay:.1f}s (resync every {RESYNC_SECONDS}s)")
            assert recreated["metadata"]["uid"] != old["metadata"]["uid"]
            assert delay <= RESYNC_SECONDS + RECREATE_SLACK_SECONDS, f"re-created only {delay:.1f}s after the heal"

            rec.wait(
                "Healthy on version 1 with both replicas Ready again",
                lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == v1 and s.get("readyReplicas") == 2,
                timeout=120,
            )

            # The deleted track's pods are the garbage collector's to remove, in the background: a track re-created
            # within a second finds them still Ready for a moment.
            def two_pods() -> list | None:
                found = ready_pods(kube, namespace)
                return found if len(found) == 2 else None

            pods = wait_for("only the re-created track's 2 pods to serve", two_pods, timeout=60, interval=1)
            assert {(p.track, p.version) for p in pods} == {("stable", v1)}, pods
            until = time.monotonic() + STAYS_HEALTHY_SECONDS
            while time.monotonic() < until:
                current = rec.poll()
                assert current is not None and current.get("phase") == "Healthy", current
                time.sleep(1.0)
            assert op.running()
            print(f"relayed connections refused while cut: {partition.refused}")
    finally:
        partition.close()
