"""Run one Pod's containers as local processes inside the pod's network namespace."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import network, servicenet
from .containerspec import container_env_base
from .imagerun import nsenter_prefix, start_argv
from .imagestore import ImageStoreError, container_name
from .kubeclient import ApiError
from .podspec import (
    ContainerConfigError,
    ContainerState,
    container_argv,
    pod_status,
    resolve_env,
    restored_state,
    termination_message_from_log,
)
from .probes import ProbeTracker, run_probe

if TYPE_CHECKING:
    from .nodeagent import NodeAgent

Obj = dict[str, Any]
log = logging.getLogger("mlops.node-agent")
MAX_BACKOFF_SECONDS = 20.0


def utc_now() -> str:
    """RFC 3339 UTC timestamp with second precision, as the API uses."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Container:
    """A container's spec, its live process and its probe trackers."""

    spec: Obj
    state: ContainerState
    process: subprocess.Popen[bytes] | None = None
    restart_at: float = 0.0
    readiness: ProbeTracker | None = None
    liveness: ProbeTracker | None = None
    backoff: float = 1.0
    killed_reason: str | None = None
    log_offset: int = 0
    from_image: str = ""  # the store's image name when the container runs from its image, else host process
    enter: list[str] | None = None  # how an exec probe joins a container run from its image


class PodRunner(threading.Thread):
    """Owns one pod from the moment it is bound to this node until its object is gone."""

    def __init__(self, agent: NodeAgent, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.uid: str = meta["uid"]
        self.removed = threading.Event()
        self.wake = threading.Event()
        self.netns: str | None = None
        self.pod_ip: str | None = None
        self.started = pod.get("status", {}).get("startTime") or utc_now()
        self.last_status: Obj | None = None
        self.log_dir = agent.config.logs_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{self.uid[:8]}"
        self.work_dir = agent.config.pods_dir / self.uid
        self.containers = [self._container_from(spec) for spec in pod["spec"]["containers"]]

    def _container_from(self, spec: Obj) -> Container:
        return Container(spec=spec, state=restored_state(spec, self.pod.get("status", {}).get("containerStatuses")))

    # --- called from the agent's watch thread -------------------------------------------
    def update(self, pod: Obj) -> None:
        """A newer version of the pod object arrived."""
        self.pod = pod
        self.wake.set()

    def remove(self) -> None:
        """The pod object is gone from the API: stop everything now."""
        self.removed.set()
        self.wake.set()

    # --- the pod's life --------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:  # a bug here must not take the whole node down
            log.exception("pod %s failed in the agent", self.pod_ref)
            self._kill_all(grace=0)
        finally:
            self._teardown_network()
            for container in self.containers:
                if container.from_image:
                    self.agent.images.remove(container_name(self.uid, container.spec["name"]))
            # The pod's sandbox, emptyDir volumes included, goes with the pod (as the kubelet's).
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.agent.forget(self.uid)

    @property
    def pod_ref(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def restart_policy(self) -> str:
        return self.pod["spec"].get("restartPolicy", "Always")

    def _terminal(self) -> bool:
        return self.pod.get("status", {}).get("phase") in ("Succeeded", "Failed")

    def _run(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if not self._terminal():
            self._setup_network()
        while True:
            if self.removed.is_set():
                self._kill_all(grace=0)
                return
            if self.pod["metadata"].get("deletionTimestamp"):
                self._delete_gracefully()
                return
            self._step()
            self.wake.wait(0.25 if not self._all_finished() else 2.0)
            self.wake.clear()

    def _setup_network(self) -> None:
        cfg = self.agent.config
        while not self.removed.is_set():
            try:
                self.pod_ip = self.agent.addresses.acquire(self.uid)
                self.netns = network.create_pod_network(
                    self.uid, self.pod_ip, cfg.bridge_prefix, cfg.bridge_ip, cfg.bridge
                )
                network.write_pod_resolv_conf(self.netns, servicenet.resolv_conf(self.pod, cfg.bridge_ip))
                return
            except network.NetworkError as error:
                log.warning("pod %s: network setup failed: %s", self.pod_ref, error)
                for c in self.containers:
                    c.state.reason, c.state.message = "NetworkNotReady", str(error)
                self._report()
                time.sleep(2)

    def _teardown_network(self) -> None:
        network.delete_pod_network(self.uid)
        self.netns = None

    def _all_finished(self) -> bool:
        return all(c.state.state == "terminated" and c.restart_at == 0.0 for c in self.containers)

    def _step(self) -> None:
        now = time.monotonic()
        for container in self.containers:
            self._poll(container, now)
            if container.process is None and self._should_start(container, now):
                self._start(container)
            if container.process is not None:
                self._probe(container, now)
        self._report()
        if self._all_finished() and self.netns and self.pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            self._teardown_network()

    def _should_start(self, container: Container, now: float) -> bool:
        if self.netns is None or self.removed.is_set():
            return False
        state = container.state
        if state.state == "waiting":
            return now >= container.restart_at
        if state.state == "terminated":
            again = self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and state.exit_code != 0)
            if not again:
                return False
            if container.restart_at == 0.0:
                container.restart_at = now + container.backoff
                container.backoff = min(container.backoff * 2, MAX_BACKOFF_SECONDS)
                return False
            return now >= container.restart_at
        return False

    def _start(self, container: Container) -> None:
        spec, state = container.spec, container.state
        agent = self.agent
        container.from_image, container.enter = "", None
        try:
            # The pod's own address is known here before the API's copy of the status says so.
            status = {
                **self.pod.get("status", {}),
                "podIP": self.pod_ip,
                "podIPs": [{"ip": self.pod_ip}],
                "hostIP": agent.config.bridge_ip,
                "hostIPs": [{"ip": agent.config.bridge_ip}],
            }
            image = agent.images.lookup(spec.get("image", ""))
            node_env = agent.base_env(self.pod_ip or "")
            env = resolve_env(
                {**self.pod, "status": status},
                spec,
                config_maps=agent.lookup_config_map,
                secrets=agent.lookup_secret,
                base_env=container_env_base(image, node_env) if image else node_env,
            )
            if image:
                argv, plan = start_argv(
                    agent.images,
                    image,
                    self.pod,
                    spec,
                    work_dir=self.work_dir,
                    pod_ip=self.pod_ip or "",
                    env=env,
                    node_mounts=agent.node_mounts,
                    lookups=(agent.lookup_config_map, agent.lookup_secret, agent.request_token),
                )
                container.from_image = image.name
                container.enter = nsenter_prefix(plan)
            else:
                argv = container_argv(spec, env, agent.image_entrypoints)
        except (ContainerConfigError, ApiError) as error:
            state.state, state.reason, state.message = "waiting", ContainerConfigError.reason, str(error)
            container.restart_at = time.monotonic() + 2.0
            return
        except (ImageStoreError, OSError) as error:
            state.state, state.reason, state.message = "waiting", "CreateContainerError", str(error)
            container.restart_at = time.monotonic() + 2.0
            return
        if state.state == "terminated":
            state.last_terminated = {
                "exitCode": state.exit_code,
                "reason": state.reason,
                "startedAt": state.started_at,
                "finishedAt": state.finished_at,
            }
            state.restart_count += 1
        if container.from_image:  # the launcher chroots and changes directory itself
            cwd = self.work_dir
        else:
            cwd = Path(spec.get("workingDir") or self.work_dir)
            cwd.mkdir(parents=True, exist_ok=True)
            env.setdefault("HOME", str(self.work_dir))
        log_path = self.log_dir / f"{spec['name']}.log"
        container.log_offset = log_path.stat().st_size if log_path.exists() else 0
        try:
            with log_path.open("ab") as out:
                container.process = subprocess.Popen(
                    ["ip", "netns", "exec", self.netns or "", *argv],
                    env=env,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as error:
            state.state, state.reason, state.message = "waiting", "RunContainerError", str(error)
            container.restart_at = time.monotonic() + 2.0
            return
        state.state, state.reason, state.message = "running", "", ""
        state.started_at, state.finished_at, state.exit_code = utc_now(), None, None
        if container.enter is not None:  # nsenter joins the container's process, known from here on
            container.enter[1:1] = [f"--target={container.process.pid}"]
        state.ready = spec.get("readinessProbe") is None
        container.restart_at = 0.0
        started = time.monotonic()
        container.readiness = ProbeTracker(spec["readinessProbe"], started) if spec.get("readinessProbe") else None
        container.liveness = ProbeTracker(spec["livenessProbe"], started) if spec.get("livenessProbe") else None
        container.killed_reason = None
        mode = f"from image {container.from_image}" if container.from_image else "as a host process"
        log.info(
            "pod %s: started container %s %s (pid %s): %s",
            self.pod_ref,
            spec["name"],
            mode,
            container.process.pid,
            argv,
        )

    def _poll(self, container: Container, now: float) -> None:
        process = container.process
        if process is None or process.poll() is None:
            return
        code = process.returncode
        exit_code = 128 - code if code < 0 else code
        state = container.state
        state.state, state.exit_code, state.finished_at, state.ready = "terminated", exit_code, utc_now(), False
        state.reason = "Completed" if exit_code == 0 else "Error"
        state.message = container.killed_reason or ""
        if (
            exit_code != 0
            and not state.message
            and container.spec.get("terminationMessagePolicy") == ("FallbackToLogsOnError")
        ):
            state.message = self._log_tail(container)
        container.process = None
        if exit_code == 0:
            container.backoff = 1.0
        log.info("pod %s: container %s exited with %s", self.pod_ref, container.spec["name"], exit_code)

    def _log_tail(self, container: Container) -> str:
        """This run's log tail, as the kubelet reports it for FallbackToLogsOnError."""
        try:
            with (self.log_dir / f"{container.spec['name']}.log").open("rb") as log_file:
                log_file.seek(container.log_offset)
                return termination_message_from_log(log_file.read())
        except OSError:
            return ""

    def _probe(self, container: Container, now: float) -> None:
        for tracker, kind in ((container.liveness, "liveness"), (container.readiness, "readiness")):
            if tracker is None or not tracker.due(now):
                continue
            enter = container.enter if container.from_image and container.process else None
            tracker.record(run_probe(tracker.probe, container.spec, self.pod_ip or "", self.netns or "", enter), now)
            if kind == "readiness":
                container.state.ready = tracker.passing
            elif tracker.failed and container.process is not None:
                container.killed_reason = "Container failed liveness probe, will be restarted"
                log.info("pod %s: %s", self.pod_ref, container.killed_reason)
                self._kill(container, self._grace())

    def _grace(self) -> float:
        meta_grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if meta_grace is not None:
            return float(meta_grace)
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))

    def _kill(self, container: Container, grace: float) -> None:
        process = container.process
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=max(wait, 0.01))
                break
            except subprocess.TimeoutExpired:
                continue
        self._poll(container, time.monotonic())

    def _kill_all(self, grace: float) -> None:
        threads = [threading.Thread(target=self._kill, args=(c, grace)) for c in self.containers if c.process]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _delete_gracefully(self) -> None:
        """SIGTERM, the grace period, SIGKILL; terminal status; then remove the object for good."""
        self._kill_all(self._grace())
        self._report()
        meta = self.pod["metadata"]
        try:
            self.agent.client.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        except ApiError as error:
            if error.status not in (404, 409):
                log.warning("pod %s: final delete failed: %s", self.pod_ref, error)
        self.agent.addresses.release(self.uid)

    def _report(self) -> None:
        if self.removed.is_set():
            return
        status = pod_status(
            self.pod,
            [c.state for c in self.containers],
            pod_ip=self.pod_ip,
            host_ip=self.agent.config.bridge_ip,
            started=self.started,
            now=utc_now(),
        )
        if status == self.last_status:
            return
        meta = self.pod["metadata"]
        try:
            updated = self.agent.client.merge_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", {"status": status}
            )
            self.pod = updated
            self.last_status = status
        except ApiError as error:
            if error.status == 404:
                self.removed.set()
            else:
                log.warning("pod %s: status update failed: %s", self.pod_ref, error)


def default_path() -> str:
    """PATH for containers: the operator's environment first, so `mlops-worker` and `python` resolve."""
    return os.pathsep.join(
        [
            str(Path(sys.executable).parent),
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
    )
