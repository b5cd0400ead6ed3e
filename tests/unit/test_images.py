"""The Dockerfiles under images/ (no Docker engine here: they are parsed), their dependency sets, and the
image names the chart configures versus what the operator uses by default."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml
from mlops_operator import __version__
from mlops_operator.controllers.settings import Settings
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
IMAGES = {
    # image: (extra, console script and args of the ENTRYPOINT, modules its entrypoint runs)
    "operator": ("operator", ["mlops-operator", "run"], ["mlops_operator.cli", "mlops_operator.controllers.registry"]),
    "trainer": ("trainer", ["mlops-worker"], ["mlops_operator.worker.cli"]),
    "server": ("server", ["mlops-server"], ["mlops_operator.server.cli", "mlops_operator.server.app"]),
}
# Imported only for sources the default install does not support either (s3://, gcs:// via fsspec).
OPTIONAL_IMPORTS = {"fsspec", "s3fs", "boto3", "botocore", "gcsfs"}
# mlops-operator subcommands that are not the image's job (local cluster, demo, traffic generator).
# Developer tools the CLI imports lazily; the operator image runs only `mlops-operator run`.
OPERATOR_IMAGE_EXCLUDES = (
    "mlops_operator.localcluster",
    "mlops_operator.demo",
    "mlops_operator.traffic",
    "mlops_operator.driftreplay",
)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def args_of(dockerfile: Path) -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in instructions(dockerfile) if word == "ARG" and "=" in rest)


def resolve(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), value)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_is_multistage_pinned_nonroot_with_a_real_entrypoint(image: str) -> None:
    dockerfile = REPO / "images" / image / "Dockerfile"
    steps, args = instructions(dockerfile), args_of(dockerfile)
    froms = [resolve(rest, args).split() for word, rest in steps if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: a builder stage and a runtime stage"
    for base in froms:
        ref = base[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", ref), f"unpinned base {ref}"
    assert froms[0][1:] == ["AS", "build"] or [w.lower() for w in froms[0][1:]] == ["as", "build"]
    runtime = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    assert any(word == "COPY" and "--from=build" in rest for word, rest in runtime), "runtime copies the built venv"
    assert not any(word == "RUN" and "pip wheel" in rest for word, rest in runtime), "no build tools in the runtime"
    users = [rest for word, rest in runtime if word == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == 10001, f"USER {users[-1]}: numeric non-root uid 10001 (runAsNonRoot checks it)"
    assert any(word == "RUN" and "useradd" in rest and "--uid 10001" in rest for word, rest in runtime)

    extra, entrypoint, _ = IMAGES[image]
    entry = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert entry, "an ENTRYPOINT"
    assert json.loads(entry[-1]) == entrypoint, "exec form, naming the console script"
    assert entrypoint[0] in PYPROJECT["project"]["scripts"], f"{entrypoint[0]} is not a console script"
    build = " ".join(rest for word, rest in steps if word == "RUN")
    assert re.search(rf"extra_requirements\.py \S+ {extra}\b", build), f"installs only the '{extra}' extra"
    assert "--no-deps" in build


def test_extras_keep_the_default_install_and_its_pins() -> None:
    """An extra pins what the default install pins, or a distribution the default install brings (as
    mlflow-skinny, mlflow's client half), at the version that install resolves to."""
    default = {canonicalize_name(Requirement(r).name): r for r in PYPROJECT["project"]["dependencies"]}
    brought = distribution_closure(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    for image, (extra, _, _) in IMAGES.items():
        assert extra in extras, f"pyproject has no [{extra}] extra for images/{image}"
        for requirement in extras[extra]:
            parsed = Requirement(requirement)
            name = canonicalize_name(parsed.name)
            if name in default:
                assert default[name] == requirement, (
                    f"[{extra}] {requirement} must equal the default pin {default[name]}"
                )
                continue
            assert name in brought, f"[{extra}] {requirement} is not part of the default install"
            assert str(parsed.specifier) == f"=={md.version(parsed.name)}", (
                f"[{extra}] {requirement}: pin it as installed"
            )


def _module_file(module: str) -> Path | None:
    path = PACKAGE.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def third_party_imports(entries: list[str], exclude: tuple[str, ...] = ()) -> set[str]:
    """Top-level third-party modules imported by the entries and every mlops_operator module they reach
    (function-level imports included: lazy imports run too)."""
    seen: set[str] = set()
    found: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen or module.startswith(exclude):
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:
            continue
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                names = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "mlops_operator":
                    if _module_file(name) is not None:
                        todo.append(name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)
    return found


@cache
def _owners() -> dict[str, list[str]]:
    return dict(md.packages_distributions())  # slow (scans every installed distribution): once per session


def distribution_closure(requirements: list[str]) -> set[str]:
    """The distributions an install of `requirements` brings (markers evaluated here, no extras)."""
    environment = {**default_environment(), "extra": ""}
    closure: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in closure:
            continue
        closure.add(name)
        for sub in md.requires(requirement.name) or []:
            parsed = Requirement(sub)
            if parsed.marker is None or parsed.marker.evaluate(environment):
                todo.append(parsed)
    return closure


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_each_image_extra_covers_what_its_entrypoint_imports(image: str) -> None:
    extra, _, entries = IMAGES[image]
    exclude = OPERATOR_IMAGE_EXCLUDES if image == "operator" else ()
    imports = third_party_imports(entries, exclude)
    assert imports, "the walk found the package's imports"
    provided = distribution_closure(PYPROJECT["project"]["optional-dependencies"][extra])
    owners = _owners()
    missing = {
        module: owners.get(module)
        for module in imports - OPTIONAL_IMPORTS
        if not {canonicalize_name(d) for d in owners.get(module, [])} & provided
    }
    assert not missing, f"images/{image} ([{extra}]) lacks the distributions of {missing}"


def test_operator_image_stays_small() -> None:
    """The operator reaches MLflow over REST: the heavy ML stack is not in its image."""
    provided = distribution_closure(PYPROJECT["project"]["optional-dependencies"]["operator"])
    assert not provided & {"mlflow", "pandas", "scikit-learn", "numpy", "cryptography"}


def test_extra_requirements_script_reads_wheel_metadata() -> None:
    script = REPO / "images" / "extra_requirements.py"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.4",
            "Name: mlops-operator",
            "Requires-Dist: kopf==1.45.2",
            "Provides-Extra: operator",
            'Requires-Dist: kopf==1.45.2; extra == "operator"',
            'Requires-Dist: httpx==0.28.1 ; extra == "operator"',
            "Provides-Extra: dev",
            'Requires-Dist: pytest==9.2.0; extra == "dev"',
            "",
        ]
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from extra_requirements import extra_requirements as e; "
        "print(e(sys.stdin.read(), 'operator'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(script.parent)], input=metadata, capture_output=True, text=True, check=True
    )
    assert ast.literal_eval(result.stdout.strip()) == ["kopf==1.45.2", "httpx==0.28.1"]


def test_chart_images_match_the_operator_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    values = yaml.safe_load((REPO / "charts" / "mlops-operator" / "values.yaml").read_text())
    chart = yaml.safe_load((REPO / "charts" / "mlops-operator" / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__ == PYPROJECT["project"]["version"]
    for variable in ("MLOPS_WORKER_IMAGE", "MLOPS_SERVER_IMAGE"):
        monkeypatch.delenv(variable, raising=False)
    settings = Settings.from_env()
    for key, default in (("workerImage", settings.worker_image), ("serverImage", settings.server_image)):
        repository, tag = default.rsplit(":", 1)
        assert values[key]["repository"] == repository, f"{key}.repository differs from the operator's default"
        assert values[key]["tag"] in ("", tag), f"{key}.tag must default to the appVersion ({tag})"
    assert values["image"]["repository"] == "mlops-operator/operator"
    # The image names of the Dockerfile headers and build commands match too.
    for image in IMAGES:
        header = (REPO / "images" / image / "Dockerfile").read_text()
        assert f"-t mlops-operator/{image}:{__version__}" in header
