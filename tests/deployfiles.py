"""Reading the deployment files the way Docker Compose and Docker would, for the deploy tests."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
RABBITMQ_OVERLAY = ROOT / "compose" / "docker-compose.rabbitmq.yml"
DOCKERFILE = ROOT / "compose" / "Dockerfile"
KUBERNETES_DIR = ROOT / "deploy" / "kubernetes"
VENV_BIN = Path(sys.executable).parent

_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def compose(*overlays: Path) -> dict[str, Any]:
    """The compose file, YAML anchors and merge keys resolved, with ``overlays`` merged in.

    Merged as ``docker compose -f base -f overlay`` does for what the files use: services
    and top-level sections by name, a service's mappings (``environment``, ``depends_on``)
    key by key, anything else replaced.
    """
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    for overlay in overlays:
        extra: dict[str, Any] = yaml.safe_load(overlay.read_text())
        for section, entries in extra.items():
            if section.startswith("x-") or not isinstance(entries, dict):
                continue
            merged = doc.setdefault(section, {}) or {}
            doc[section] = merged
            for name, spec in entries.items():
                if section != "services" or name not in merged:
                    merged[name] = spec
                    continue
                for key, value in spec.items():
                    if isinstance(value, dict) and isinstance(merged[name].get(key), dict):
                        merged[name][key] = {**merged[name][key], **value}
                    else:
                        merged[name][key] = value
    return doc


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's interpolation: ``${VAR}``, ``${VAR:-default}``, ``$VAR``; ``$$`` is a ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(3)
        default = match.group(2) or ""
        return environ.get(name) or default

    return _VARIABLE.sub(replace, value)


def service_env(
    service: str, overrides: dict[str, str], doc: dict[str, Any] | None = None
) -> dict[str, str]:
    """What a compose service's process sees: the image's ENV, its ``environment``, overrides.

    The image's PATH starts with the virtualenv's bin and PYTHONPATH is the app's directory: here
    that is this test run's virtualenv and the repository root.
    """
    spec = (doc or compose())["services"][service]
    env = {**os.environ, **dockerfile_env()}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    for key, value in (spec.get("environment") or {}).items():
        env[key] = interpolate(str(value), {})
    env.update(overrides)
    return env


def local_command(argv: list[str]) -> list[str]:
    """A container command with its program resolved in this test run's virtualenv."""
    program = VENV_BIN / argv[0]
    assert program.exists(), f"{argv[0]!r} is not installed in {VENV_BIN}"
    return [str(program), *argv[1:]]


def healthcheck(service: str) -> list[str]:
    """A compose service's healthcheck as an argv (``CMD-SHELL`` runs through ``sh -c``)."""
    test = compose()["services"][service]["healthcheck"]["test"]
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["sh", "-c", interpolate(rest[0], {})]
    assert kind == "CMD", f"{service}: healthcheck test must start with CMD or CMD-SHELL"
    return [interpolate(part, {}) for part in rest]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        out.append((instruction.upper(), arguments.strip()))
    return out


def dockerfile_stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """Each build stage's name and its instructions (``ARG`` before the first ``FROM`` dropped)."""
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "FROM":
            words = arguments.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append((name, []))
        elif stages:
            stages[-1][1].append((instruction, arguments))
    return stages


def exec_form(arguments: str) -> list[str]:
    """The argv of an exec-form (JSON array) ``CMD``/``ENTRYPOINT``/``HEALTHCHECK CMD``."""
    argv = json.loads(arguments)
    assert isinstance(argv, list), f"not an exec-form command: {arguments}"
    return [str(word) for word in argv]


def dockerfile_env() -> dict[str, str]:
    """The final stage's ``ENV`` (``KEY=value`` pairs; ``$PATH`` left to the caller)."""
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_stages()[-1][1]:
        if instruction == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                if key != "PATH":
                    env[key] = value
    return env


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under ``deploy/kubernetes/`` (the example Secret too)."""
    out = []
    for path in sorted(KUBERNETES_DIR.rglob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((path, doc))
    return out


def manifest(kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` named ``name``."""
    found = [
        doc for _, doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]
