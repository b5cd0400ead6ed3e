"""Read a Dataset source once: the raw bytes give the version (fingerprint), the table is parsed from them."""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from ..api.dataset import DataSource
from .errors import PermanentError, RetryableError
from .sourcepolicy import SourcePolicy, check_host, check_run_namespace, check_scheme, check_size, refused

REDIRECTS = {301, 302, 303, 307, 308}
# HTTP statuses a retry may cure; every other 4xx/5xx is a wrong URI or a refusal.
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
MLFLOW_SCHEMES = ("runs", "models", "mlflow-artifacts")


@dataclass(frozen=True)
class LoadedSource:
    """A parsed source and the fingerprint of the bytes it came from."""

    frame: pd.DataFrame
    version: str
    size: int


def fingerprint(data: bytes) -> str:
    """The content version of a source: `sha256:<hex>` of its raw bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_bytes(uri: str, policy: SourcePolicy | None = None, namespace: str = "") -> bytes:
    """The raw bytes behind a source URI (file://, http(s)://, MLflow artifact URIs, s3/gs via fsspec), as the
    cluster's source policy allows them (`namespace`: the Dataset's, for the runs:/ rule)."""
    policy = policy or SourcePolicy()
    scheme = urlparse(uri).scheme
    if scheme in ("file", "http", "https", "s3", "gs", *MLFLOW_SCHEMES):
        check_scheme(policy, uri, scheme)
    if scheme == "file":
        return _read_file(uri, policy)
    if scheme in ("http", "https"):
        return _read_http(uri, policy)
    if scheme in MLFLOW_SCHEMES:
        return _read_mlflow_artifact(uri, policy, namespace)
    if scheme in ("s3", "gs"):
        return _read_fsspec(uri, policy)
    raise PermanentError(f"source {uri}: unsupported scheme {scheme!r} (use file://, http(s)://, s3://, gs://, runs:/)")


def _read_file(uri: str, policy: SourcePolicy) -> bytes:
    parsed = urlparse(uri)
    # file://host/path is not a local file; file:///path and file://localhost/path are.
    if parsed.netloc not in ("", "localhost"):
        raise PermanentError(f"source {uri}: file:// URIs must name a local path (file:///data/x.csv)")
    path = Path(unquote(parsed.path))
    try:
        check_size(policy, uri, path.stat().st_size)
        return path.read_bytes()
    except FileNotFoundError as error:
        raise PermanentError(f"source {uri}: file {path} does not exist") from error
    except IsADirectoryError as error:
        raise PermanentError(f"source {uri}: {path} is a directory, not a file") from error
    except PermissionError as error:
        raise PermanentError(f"source {uri}: permission denied reading {path}") from error
    except OSError as error:
        raise RetryableError(f"source {uri}: could not read {path}: {error.strerror or error}") from error


def _read_http(uri: str, policy: SourcePolicy) -> bytes:
    """GET the URI, following redirects by hand so that every hop's host is checked, within the byte limit."""
    import httpx

    url = uri
    with httpx.Client(timeout=policy.timeout_seconds, follow_redirects=False) as client:
        for _ in range(policy.max_redirects + 1):
            try:
                target = httpx.URL(url)
                if target.scheme not in ("http", "https"):
                    raise refused(uri, f"it redirects to a {target.scheme or 'relative'}:// URL")
                check_scheme(policy, uri, target.scheme)
                check_host(policy, uri, target.host, target.port or (443 if target.scheme == "https" else 80))
                with client.stream("GET", target) as response:
                    if response.status_code in REDIRECTS and "location" in response.headers:
                        url = str(target.join(response.headers["location"]))
                        continue
                    _raise_for_status(uri, response.status_code, response.reason_phrase)
                    return _read_limited(uri, response.iter_bytes(), policy)
            except httpx.InvalidURL as error:
                raise PermanentError(f"source {uri}: invalid URL ({error})") from error
            except httpx.HTTPError as error:
                raise RetryableError(f"source {uri}: could not fetch it ({type(error).__name__}: {error})") from error
    raise refused(uri, f"it redirects more than sourcePolicy.maxRedirects ({policy.max_redirects}) times")


def _raise_for_status(uri: str, status: int, phrase: str) -> None:
    if status >= 400:
        reason = f"HTTP {status} {phrase}".strip()
        if status in RETRYABLE_HTTP:
            raise RetryableError(f"source {uri}: the server answered {reason}")
        raise PermanentError(f"source {uri}: the server answered {reason}")


def _read_limited(uri: str, chunks: Any, policy: SourcePolicy) -> bytes:
    """The chunks joined, stopping as soon as they pass the byte limit (nothing more is buffered)."""
    parts, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        check_size(policy, uri, size)
        parts.append(chunk)
    return b"".join(parts)


def _read_mlflow_artifact(uri: str, policy: SourcePolicy, namespace: str) -> bytes:
    import mlflow
    from mlflow.exceptions import MlflowException

    if policy.same_namespace_runs:
        scheme, run_id = urlparse(uri).scheme, urlparse(uri).netloc or uri.removeprefix("runs:/").split("/", 1)[0]
        if scheme != "runs":
            raise refused(
                uri, "only runs:/ artifacts of this namespace's runs may be read (sourcePolicy.sameNamespaceRuns)"
            )
        try:
            tags = mlflow.MlflowClient().get_run(run_id).data.tags
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise PermanentError(f"source {uri}: {error.message}") from error
            raise RetryableError(f"source {uri}: {error.message}") from error
        check_run_namespace(policy, uri, tags, namespace)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise PermanentError(f"source {uri}: {error.message}") from error
            raise RetryableError(f"source {uri}: {error.message}") from error
        if local.is_dir():
            raise PermanentError(f"source {uri}: names a directory of artifacts, not one file")
        check_size(policy, uri, local.stat().st_size)
        return local.read_bytes()


def _read_fsspec(uri: str, policy: SourcePolicy) -> bytes:
    try:
        import fsspec
    except ImportError as error:
        raise PermanentError(
            f"source {uri}: s3:// and gs:// sources need fsspec (with s3fs or gcsfs) in the worker image"
        ) from error
    try:
        with fsspec.open(uri, "rb") as handle:
            data = bytes(handle.read() if policy.max_bytes is None else handle.read(policy.max_bytes + 1))
        check_size(policy, uri, len(data))
        return data
    except FileNotFoundError as error:
        raise PermanentError(f"source {uri}: object does not exist") from error
    except PermissionError as error:
        raise PermanentError(f"source {uri}: access denied") from error
    except OSError as error:
        raise RetryableError(f"source {uri}: could not read it ({error})") from error


def parse_table(data: bytes, fmt: str, uri: str) -> pd.DataFrame:
    """Parse raw bytes as csv or parquet; anything unparseable is a permanent error naming the URI."""
    if not data:
        raise PermanentError(f"source {uri}: the file is empty")
    try:
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(data))
        return pd.read_csv(io.BytesIO(data))
    except Exception as error:  # pandas and pyarrow raise many unrelated types for bad input
        detail = " ".join(str(error).split())[:300]
        raise PermanentError(f"source {uri}: could not parse it as {fmt} ({detail})") from error


def load_source(source: DataSource, policy: SourcePolicy | None = None, namespace: str = "") -> LoadedSource:
    """Read the source's bytes once (as the source policy allows), fingerprint them, and parse them."""
    data = read_bytes(source.uri, policy, namespace)
    return LoadedSource(frame=parse_table(data, source.format, source.uri), version=fingerprint(data), size=len(data))
