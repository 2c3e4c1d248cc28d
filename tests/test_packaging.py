"""What a user installs: the wheel and sdist, built from a clean copy of the tree and read."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    """``(wheel, sdist, package modules of the tree)``: the wheel is built from the sdist."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "src"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    out = base / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    modules = {
        str(p.relative_to(source)) for p in (source / "wowevent_kombu").rglob("*") if p.is_file()
    }
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return wheel, sdist, modules


def test_the_wheel_holds_the_package_its_license_and_entry_points(built):
    wheel, _, modules = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [info] = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert modules <= names, sorted(modules - names)
    assert {n for n in names if not n.startswith(("wowevent_kombu/", info))} == set()
    assert "wowevent_kombu/py.typed" in names
    assert {f"{info}/licenses/LICENSE", f"{info}/LICENSE"} & names
    assert "wowevent_kombu/testing/redisserver.py" in names  # documented part of .testing
    assert "wowevent_kombu/brokers/redis/server.py" not in names
    assert "License: MIT" in metadata or "License-Expression: MIT" in metadata
    assert "Requires-Python: >=3.11" in metadata
    assert "wowevent = wowevent_kombu.cli:main" in entry_points
    assert "wowevent = wowevent_kombu.cli:celery_command" in entry_points


def test_the_sdist_holds_what_the_wheel_is_built_from(built):
    _, sdist, modules = built
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
        license_text = archive.extractfile(f"{top}/LICENSE").read().decode()  # type: ignore[union-attr]
    assert {"LICENSE", "README.md", "setup.cfg", "pyproject.toml"} <= names
    assert modules <= names, sorted(modules - names)
    assert license_text.startswith("MIT License")
