"""Signed prediction ids (pure): round trips, the format's sizes, and every way an id is refused."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from mlops_operator.server.predictionids import (
    MALFORMED,
    MAX_ID_CHARS,
    SIGNATURE,
    IdError,
    IdSigner,
    label_digest,
    label_text,
)

KEY = b"k" * 32
OLD_KEY = b"o" * 32
NOW = 1_800_000_000.0


def signer(key: bytes = KEY, previous: bytes | None = None, deployment: str = "iris") -> IdSigner:
    return IdSigner(key, previous, namespace="team-a", deployment=deployment, model="iris-classifier")


def refused(verifier: IdSigner, text: object) -> str:
    with pytest.raises(IdError) as caught:
        verifier.verify(text)
    return caught.value.reason


def test_label_ids_round_trip_with_version_track_time_and_class() -> None:
    labels = np.asarray(["setosa", "versicolor", "virginica", "setosa", "é" * 200, "x" * 300], dtype=object)
    ids = signer().mint("3", "canary", labels, NOW, labels=True)
    assert len(ids) == len(labels) and len(set(ids)) == len(ids)  # the same class twice: two ids
    for text, label in zip(ids, labels, strict=True):
        pid = signer().verify(text)
        assert (pid.version, pid.track, pid.issued) == ("3", "canary", int(NOW))
        if len(label.encode()) <= 254:
            assert pid.label == label and pid.label_digest is None
        else:  # carried as a digest: the id stays short
            assert pid.label is None and pid.label_digest == label_digest(label)
    assert [len(i) for i in ids[:3]] == [56, 60, 60]  # 42-45 bytes: 18 of prefix, 24-27 for the row
    assert max(len(i) for i in ids) <= MAX_ID_CHARS


def test_value_ids_round_trip_on_a_named_track() -> None:
    values = np.asarray([151.25, -0.5, 0.0, 1e300])
    ids = signer().mint("12", "blue", values, NOW, labels=False)
    got = [signer().verify(i) for i in ids]
    assert [p.value for p in got] == values.tolist()
    assert {(p.version, p.track, p.label) for p in got} == {("12", "blue", None)}
    assert len(signer().mint("1", "stable", values[:1], NOW, labels=False)[0]) == 56
    assert signer().mint("1", "stable", values[:0], NOW, labels=False) == []


def test_integer_and_numeric_labels_compare_as_text() -> None:
    ids = signer().mint("1", "stable", np.asarray([0, 1, 2]), NOW, labels=True)
    assert [signer().verify(i).label for i in ids] == ["0", "1", "2"]
    assert label_text(1) == label_text(1.0) == label_text(np.int64(1)) == "1"
    assert label_text(True) == "True" and label_text(0.5) == "0.5"
    assert label_text(float("nan")) is None and label_text(None) is None and label_text([1]) is None


def test_an_altered_byte_anywhere_is_refused() -> None:
    (text,) = signer().mint("1", "canary", np.asarray(["setosa"], dtype=object), NOW, labels=True)
    raw = base64.urlsafe_b64decode(text)
    for position in range(len(raw)):
        altered = bytearray(raw)
        altered[position] ^= 0x01
        reason = refused(signer(), base64.urlsafe_b64encode(bytes(altered)).decode())
        assert reason == (MALFORMED if position == 0 else SIGNATURE), position  # byte 0: the format


def test_forged_other_deployment_and_malformed_ids_are_refused() -> None:
    (text,) = signer().mint("1", "canary", np.asarray(["setosa"], dtype=object), NOW, labels=True)
    assert refused(signer(b"z" * 32), text) == SIGNATURE  # forged: another key
    assert refused(signer(deployment="iris-2"), text) == SIGNATURE  # minted for another Deployment
    other_model = IdSigner(KEY, namespace="team-a", deployment="iris", model="pets")
    assert refused(other_model, text) == SIGNATURE
    for bad in ("", "abc", text[:-4], text + "AAAA" * 200, text[:-1] + "!", text.replace(text[5], "+"), 42, None):
        assert refused(signer(), bad) in (MALFORMED, SIGNATURE), bad
    assert refused(signer(), "A" * 48) == MALFORMED  # format 0
    assert refused(signer(), 42) == MALFORMED and refused(signer(), text[:-1] + "!") == MALFORMED


def test_rotation_the_previous_key_verifies_an_unknown_one_does_not() -> None:
    values = np.asarray(["setosa"], dtype=object)
    (old,) = signer(OLD_KEY).mint("1", "stable", values, NOW, labels=True)
    rotated = signer(KEY, previous=OLD_KEY)
    assert rotated.verify(old).label == "setosa"
    (new,) = rotated.mint("1", "stable", values, NOW, labels=True)
    assert signer(KEY).verify(new).label == "setosa"  # minted with the current key
    assert refused(signer(OLD_KEY), new) == SIGNATURE
    assert refused(signer(KEY, previous=b"p" * 32), old) == SIGNATURE
    with pytest.raises(ValueError, match="at least 16 bytes"):
        IdSigner(b"short")
