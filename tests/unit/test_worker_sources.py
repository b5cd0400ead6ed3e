"""Reading Dataset sources: file and http, csv and parquet, the fingerprint, failures classified; sample data."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from mlops_operator.api.dataset import DataSource
from mlops_operator.worker.cli import run
from mlops_operator.worker.errors import PermanentError, RetryableError
from mlops_operator.worker.sample_data import IRIS_COLUMNS, sample_frame, write_sample
from mlops_operator.worker.sources import fingerprint, load_source, parse_table, read_bytes


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; a path under /fail/ answers 503, /redirect?to=URL redirects there (counted)."""

    gets = 0

    def do_GET(self) -> None:
        type(self).gets += 1
        if self.path.startswith("/fail/"):
            self.send_error(503, "busy")
            return
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect?to="))
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a temporary folder."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fingerprint_is_sha256_of_the_bytes() -> None:
    assert fingerprint(b"a,b\n1,2\n") == "sha256:" + hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_file_source_csv_reads_once_and_fingerprints(tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    write_sample("iris", path)
    loaded = load_source(DataSource(uri=path.as_uri(), format="csv"))
    assert list(loaded.frame.columns) == [*IRIS_COLUMNS, "species"]
    assert len(loaded.frame) == 150
    assert loaded.version == fingerprint(path.read_bytes()) and loaded.size == path.stat().st_size


def test_parquet_source(tmp_path: Path) -> None:
    path = tmp_path / "iris.parquet"
    sample_frame("iris").to_parquet(path)
    loaded = load_source(DataSource(uri=path.as_uri(), format="parquet"))
    assert len(loaded.frame) == 150 and loaded.frame["species"].nunique() == 3


def test_http_source(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    write_sample("iris", root / "iris.csv")
    loaded = load_source(DataSource(uri=f"{base}/iris.csv"))
    assert len(loaded.frame) == 150 and loaded.version == fingerprint((root / "iris.csv").read_bytes())


def test_http_404_is_permanent_and_503_is_retryable(http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    with pytest.raises(PermanentError, match="answered HTTP 404"):
        read_bytes(f"{base}/missing.csv")
    with pytest.raises(RetryableError, match="answered HTTP 503"):
        read_bytes(f"{base}/fail/x.csv")


def test_connection_refused_is_retryable() -> None:
    with pytest.raises(RetryableError, match="could not fetch it"):
        read_bytes(f"http://127.0.0.1:{closed_port()}/iris.csv")


def test_missing_file_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"file .*nope\.csv does not exist"):
        read_bytes((tmp_path / "nope.csv").as_uri())
    with pytest.raises(PermanentError, match="is a directory"):
        read_bytes(tmp_path.as_uri())


def test_s3_without_fsspec_says_what_is_needed() -> None:
    with pytest.raises(PermanentError, match="need fsspec"):
        read_bytes("s3://bucket/data.csv")


@pytest.mark.parametrize(
    ("data", "fmt", "fragment"),
    [
        pytest.param(b"", "csv", "the file is empty", id="empty"),
        pytest.param(b'a,b\n1,"2\n', "csv", "could not parse it as csv", id="bad-csv"),
        pytest.param(b"a,b\n1,2\n", "parquet", "could not parse it as parquet", id="csv-as-parquet"),
    ],
)
def test_unparseable_bytes_are_permanent(data: bytes, fmt: str, fragment: str) -> None:
    with pytest.raises(PermanentError, match=fragment):
        parse_table(data, fmt, "file:///d")


def test_sample_data_iris_and_diabetes_columns() -> None:
    iris = sample_frame("iris")
    assert list(iris.columns) == [*IRIS_COLUMNS, "species"]
    assert sorted(iris["species"].unique()) == ["setosa", "versicolor", "virginica"]
    diabetes = sample_frame("diabetes")
    assert list(diabetes.columns) == ["age", "sex", "bmi", "bp", *(f"s{i}" for i in range(1, 7)), "progression"]
    assert len(diabetes) == 442 and diabetes["age"].max() > 1  # original units, not the scaled copy


def test_shift_moves_a_feature_by_standard_deviations(tmp_path: Path) -> None:
    base = sample_frame("iris")
    shifted = sample_frame("iris", ["petal_length=2", "sepal_width=-1"])
    delta = shifted["petal_length"] - base["petal_length"]
    assert delta.round(9).nunique() == 1 and delta.iloc[0] == pytest.approx(2 * base["petal_length"].std())
    assert (shifted["sepal_width"] < base["sepal_width"]).all()
    out = tmp_path / "deep" / "shifted.csv"
    assert write_sample("iris", out, ["petal_length=2"]) == 150
    assert pd.read_csv(out)["petal_length"].mean() == pytest.approx(shifted["petal_length"].mean(), rel=1e-4)


@pytest.mark.parametrize(
    ("shift", "fragment"),
    [("petal_length", "expected FEATURE=DELTA_STD"), ("nope=1", "no such column"), ("species=1", "not numeric")],
)
def test_bad_shifts_are_rejected(shift: str, fragment: str) -> None:
    with pytest.raises(PermanentError, match=fragment):
        sample_frame("iris", [shift])


def test_sample_data_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.csv"
    assert run(["sample-data", "diabetes", "--out", str(out), "--shift", "bmi=1"]) == 0
    assert pd.read_csv(out).shape == (442, 11)
    assert run(["sample-data", "iris", "--out", str(out), "--shift", "species=1"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: --shift species: the column is not numeric"
