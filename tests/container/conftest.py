"""The private Docker daemon, the local base image and the project's image, once per session.

Where Docker cannot run, every test here skips with the reason; under CI (``CI`` set) it fails
instead, so a broken install step cannot pass as a green run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.container.engine import Engine, EngineUnavailable

BASE_IMAGE = "wowevent-base:bookworm"
IMPORTED = "wowevent-base:debootstrap"
# The CAs this machine adds to Debian's (a TLS-inspecting proxy stands between it and PyPI).
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
TRUST = """\
FROM {imported}
COPY cas/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null \\
 && printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf
"""
IMAGE = "wowevent-kombu:0.1.0"


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the container tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    try:
        engine = Engine()
    except EngineUnavailable as exc:
        unavailable(str(exc))
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def base_image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Debian bookworm minbase plus Debian's python3, imported from the cached tarball.

    One layer on top gives it this machine's trust: its extra CAs, and pip told to use the
    system's bundle. The official Python image gets the same from the machine it is built on.
    """
    tar = os.environ.get("WOWEVENT_BASE_TAR")
    if not tar:
        out = subprocess.run([str(ROOT / "scripts" / "ensure-docker.sh")],
                             capture_output=True, text=True, timeout=900)  # fmt: skip
        tar = out.stdout.strip()
    if not tar or not Path(tar).is_file():
        unavailable(f"no base image tarball ({tar or 'scripts/ensure-docker.sh made none'})")
    started = time.monotonic()
    with Path(tar).open("rb") as stream:
        engine.run("import", "-", IMPORTED, stdin=stream, timeout=300)
    context = tmp_path_factory.mktemp("trust")
    (context / "cas").mkdir()
    for ca in LOCAL_CAS.glob("*.crt"):
        shutil.copy(ca, context / "cas" / ca.name)
    (context / "Dockerfile").write_text(TRUST.format(imported=IMPORTED))
    engine.run("build", "-t", BASE_IMAGE, str(context), timeout=300)
    print(f"\nbase image imported in {time.monotonic() - started:.1f} s")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def image(engine: Engine, base_image: str) -> str:
    """compose/Dockerfile built on the local base, pip reaching PyPI over the host's network."""
    started = time.monotonic()
    engine.run(
        "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={base_image}",
        "-f", str(ROOT / "compose" / "Dockerfile"), "-t", IMAGE, str(ROOT), timeout=900,
    )  # fmt: skip
    size = engine.image_size(IMAGE)
    print(f"\nimage {IMAGE} built in {time.monotonic() - started:.1f} s: {size / 1e6:.0f} MB")
    return IMAGE
