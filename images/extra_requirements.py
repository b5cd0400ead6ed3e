"""Print the requirements of one optional-dependency group ("extra"), one per line, from a built wheel
or from pyproject.toml (so the image's dependency layer is built before the code is copied in, and a code
change reuses it).

The images install the mlops-operator wheel with `--no-deps` and then only the requirements of their
extra (`operator`, `trainer` or `server` in pyproject.toml), so each image carries what its
entrypoint needs and not the whole default dependency set. Standard library only: it runs in the
builder stage before anything is installed.

    python extra_requirements.py dist/mlops_operator-0.1.0-py3-none-any.whl operator > requirements.txt
    python extra_requirements.py pyproject.toml operator > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
import zipfile
from email.parser import Parser

EXTRA_MARKER = re.compile(r"""^\s*extra\s*==\s*["']([^"']+)["']\s*$""")


def extra_requirements(metadata: str, extra: str) -> list[str]:
    """The Requires-Dist entries whose only marker is `extra == "<extra>"`, without the marker."""
    message = Parser().parsestr(metadata)
    if extra not in (message.get_all("Provides-Extra") or []):
        raise SystemExit(f"the wheel has no extra '{extra}' (has: {message.get_all('Provides-Extra')})")
    wanted = []
    for requirement in message.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        match = EXTRA_MARKER.match(marker)
        if match and match.group(1) == extra:
            wanted.append(spec.strip())
    return wanted


def wheel_metadata(wheel: str) -> str:
    """The METADATA file of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode()


def pyproject_requirements(path: str, extra: str) -> list[str]:
    """The requirements of `[project.optional-dependencies].<extra>` in a pyproject.toml."""
    with open(path, "rb") as file:
        extras = tomllib.load(file)["project"].get("optional-dependencies", {})
    if extra not in extras:
        raise SystemExit(f"pyproject.toml has no extra '{extra}' (has: {sorted(extras)})")
    return list(extras[extra])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} WHEEL|pyproject.toml EXTRA")
    source, wanted_extra = sys.argv[1], sys.argv[2]
    if source.endswith(".toml"):
        print("\n".join(pyproject_requirements(source, wanted_extra)))
    else:
        print("\n".join(extra_requirements(wheel_metadata(source), wanted_extra)))
