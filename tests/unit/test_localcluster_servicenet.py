"""The local cluster's Service networking: pod resolv.conf as the kubelet writes it, the Corefile, sysctls."""

from __future__ import annotations

from pathlib import Path

from mlops_operator.localcluster import servicenet
from mlops_operator.localcluster.config import ClusterConfig


def _pod(namespace: str = "team-a", **spec: object) -> dict[str, object]:
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": {"containers": [], **spec}}


def test_cluster_first_searches_the_pods_namespace_first() -> None:
    text = servicenet.resolv_conf(_pod(), "10.244.0.1")
    assert text == (
        "nameserver 10.244.0.1\nsearch team-a.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    )


def test_default_policy_keeps_the_hosts_resolver() -> None:
    assert servicenet.resolv_conf(_pod(dnsPolicy="Default"), "10.244.0.1") is None


def test_dns_config_is_merged_and_an_option_replaces_the_default_of_its_name() -> None:
    pod = _pod(
        dnsConfig={
            "nameservers": ["192.0.2.53"],
            "searches": ["corp.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        }
    )
    text = servicenet.resolv_conf(pod, "10.244.0.1")
    assert text is not None
    lines = text.splitlines()
    assert lines[0:2] == ["nameserver 10.244.0.1", "nameserver 192.0.2.53"]
    assert lines[2].endswith(" cluster.local corp.example")
    assert lines[3] == "options ndots:2 edns0"


def test_none_policy_uses_only_the_pods_dns_config() -> None:
    pod = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.53"]})
    assert servicenet.resolv_conf(pod, "10.244.0.1") == "nameserver 192.0.2.53\n"


def test_corefile_binds_the_bridge_and_reads_the_api_server_as_coredns() -> None:
    cfg = ClusterConfig(state_dir=Path("/state"))
    text = servicenet.corefile(cfg)
    assert f"bind {cfg.bridge_ip}" in text
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa" in text
    assert "kubeconfig /state/coredns.kubeconfig" in text
    assert f"ready 127.0.0.1:{cfg.coredns_ready_port}" in text


def test_sysctls_are_written_only_where_the_kernel_has_them(tmp_path: Path) -> None:
    forward = tmp_path / "net/ipv4/ip_forward"
    forward.parent.mkdir(parents=True)
    forward.write_text("0\n")
    servicenet.apply_sysctls(tmp_path)
    assert forward.read_text() == "1"
    assert not (tmp_path / "net/bridge").exists()
