"""Read a Dataset source once: the raw bytes give the version (fingerprint), the table is parsed from them."""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from ..api.dataset import DataSource
from .errors import PermanentError, RetryableError

HTTP_TIMEOUT_SECONDS = 60.0
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


def read_bytes(uri: str) -> bytes:
    """The raw bytes behind a source URI (file://, http(s)://, MLflow artifact URIs, s3/gs via fsspec)."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return _read_file(uri)
    if scheme in ("http", "https"):
        return _read_http(uri)
    if scheme in MLFLOW_SCHEMES:
        return _read_mlflow_artifact(uri)
    if scheme in ("s3", "gs"):
        return _read_fsspec(uri)
    raise PermanentError(f"source {uri}: unsupported scheme {scheme!r} (use file://, http(s)://, s3://, gs://, runs:/)")


def _read_file(uri: str) -> bytes:
    parsed = urlparse(uri)
    # file://host/path is not a local file; file:///path and file://localhost/path are.
    if parsed.netloc not in ("", "localhost"):
        raise PermanentError(f"source {uri}: file:// URIs must name a local path (file:///data/x.csv)")
    path = Path(unquote(parsed.path))
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise PermanentError(f"source {uri}: file {path} does not exist") from error
    except IsADirectoryError as error:
        raise PermanentError(f"source {uri}: {path} is a directory, not a file") from error
    except PermissionError as error:
        raise PermanentError(f"source {uri}: permission denied reading {path}") from error
    except OSError as error:
        raise RetryableError(f"source {uri}: could not read {path}: {error.strerror or error}") from error


def _read_http(uri: str) -> bytes:
    import httpx

    try:
        response = httpx.get(uri, timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=True)
    except httpx.InvalidURL as error:
        raise PermanentError(f"source {uri}: invalid URL ({error})") from error
    except httpx.HTTPError as error:
        raise RetryableError(f"source {uri}: could not fetch it ({type(error).__name__}: {error})") from error
    if response.status_code >= 400:
        reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code in RETRYABLE_HTTP:
            raise RetryableError(f"source {uri}: the server answered {reason}")
        raise PermanentError(f"source {uri}: the server answered {reason}")
    return response.content


def _read_mlflow_artifact(uri: str) -> bytes:
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise PermanentError(f"source {uri}: {error.message}") from error
            raise RetryableError(f"source {uri}: {error.message}") from error
        if local.is_dir():
            raise PermanentError(f"source {uri}: names a directory of artifacts, not one file")
        return local.read_bytes()


def _read_fsspec(uri: str) -> bytes:
    try:
        import fsspec
    except ImportError as error:
        raise PermanentError(
            f"source {uri}: s3:// and gs:// sources need fsspec (with s3fs or gcsfs) in the worker image"
        ) from error
    try:
        with fsspec.open(uri, "rb") as handle:
            return bytes(handle.read())
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


def load_source(source: DataSource) -> LoadedSource:
    """Read the source's bytes once, fingerprint them, and parse them."""
    data = read_bytes(source.uri)
    return LoadedSource(frame=parse_table(data, source.format, source.uri), version=fingerprint(data), size=len(data))
