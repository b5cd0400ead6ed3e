"""Where URLs and keys come from, and which hosts the operator calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlops_operator.api.notification import Destination
from mlops_operator.notify.destinations import SecretFiles, destination_problems, url_refusal


@pytest.mark.parametrize(
    ("url", "allowed", "refused"),
    [
        ("https://hooks.slack.com/services/T/B/X", (), None),
        ("http://127.0.0.1:8080/hook", (), None),  # empty allow-list: any host (the chart's default)
        ("http://169.254.169.254/latest/meta-data", (), "link-local"),
        ("http://[fe80::1]/", (), "link-local"),
        ("https://hooks.slack.com/x", ("hooks.slack.com",), None),
        ("https://HOOKS.slack.com./x", ("hooks.slack.com",), None),
        ("https://evil.example/x", ("hooks.slack.com",), "not in the chart's notifications.allowedHosts"),
        ("https://a.b.example.com/x", ("*.example.com",), None),
        ("https://example.com/x", ("*.example.com",), "not in"),
        ("https://notexample.com/x", ("*.example.com",), "not in"),
        ("ftp://example.com/x", (), "http(s)"),
    ],
)
def test_url_refusal(url: str, allowed: tuple[str, ...], refused: str | None) -> None:
    why = url_refusal(url, allowed)
    assert (why is None) if refused is None else (why is not None and refused in why)


def test_keys_are_scoped_to_the_policys_namespace(tmp_path: Path) -> None:
    (tmp_path / "team-a.slack").write_text("https://hooks.slack.com/a\n")
    secrets = SecretFiles(tmp_path)
    assert secrets.read("team-a", "slack") == b"https://hooks.slack.com/a"
    assert secrets.read("team-b", "slack") is None  # another namespace naming the same key gets nothing
    assert secrets.read("team-b", "../team-a.slack") is None and secrets.path("x", ".hidden") is None
    assert SecretFiles(None).read("team-a", "slack") is None


def test_destination_problems_name_the_field_and_the_key(tmp_path: Path) -> None:
    secrets = SecretFiles(tmp_path)
    dest = Destination.model_validate({"name": "s", "urlSecretKey": "slack", "signingSecretKey": "hmac"})
    problems = destination_problems("team-a", dest, secrets, ())
    chart = "of the chart's notifications.secretName"
    assert problems == [
        f"destination s: urlSecretKey 'slack' is not mounted (key team-a.slack {chart})",
        f"destination s: signingSecretKey 'hmac' is not mounted (key team-a.hmac {chart})",
    ]
    (tmp_path / "team-a.slack").write_text("https://hooks.slack.com/T/B/x")
    (tmp_path / "team-a.hmac").write_text("k")
    assert destination_problems("team-a", dest, secrets, ()) == []
    (tmp_path / "team-a.slack").write_text("https://evil.example/T/B/secret-token")
    (why,) = destination_problems("team-a", dest, secrets, ("hooks.slack.com",))
    assert "under key team-a.slack" in why and "not in the chart's" in why and "secret-token" not in why
    plain = Destination.model_validate({"name": "w", "url": "http://169.254.169.254/"})
    assert "link-local" in destination_problems("team-a", plain, secrets, ())[0]
