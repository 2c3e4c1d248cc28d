"""Deployment files: Kubernetes manifests, the compose stack, the Dockerfile, the docs' commands.

No Docker engine or cluster runs here: manifests are validated against the Kubernetes schemas
shipped by ``kubernetes-validate`` (offline), and the files are checked for what a reviewer would
otherwise have to catch by eye. ``tests/integration/test_compose_commands.py`` runs the compose
commands themselves.
"""

from __future__ import annotations

import copy
import importlib.metadata
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import ROOT
from tests.deployfiles import (
    COMPOSE_FILE,
    DOCKERFILE,
    RABBITMQ_OVERLAY,
    VENV_BIN,
    compose,
    dockerfile_stages,
    exec_form,
    interpolate,
    manifest,
    manifests,
    service_env,
)
from wowevent_kombu import Settings
from wowevent_kombu.cli import cli

KUBERNETES_VERSIONS = ["1.29", "1.33"]
PINNED_TAG = re.compile(r"^[\w./-]+:v?\d+(\.\d+)+[\w.-]*$")


# ---- Kubernetes ---------------------------------------------------------------------------------


def _ids() -> list[str]:
    return [f"{path.name}:{doc['kind']}/{doc['metadata']['name']}" for path, doc in manifests()]


def test_the_example_secret_is_not_applied_with_the_directory() -> None:
    """``kubectl apply -f deploy/kubernetes/`` does not recurse: placeholders stay out of it."""
    top = [doc["kind"] for path, doc in manifests() if path.parent.name == "kubernetes"]
    assert "Secret" not in top
    assert "Secret" in [doc["kind"] for _, doc in manifests()]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", [doc for _, doc in manifests()], ids=_ids())
def test_every_manifest_validates_against_the_kubernetes_schemas(
    doc: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    """The schema check can fail: a wrong type and an unknown field are both caught."""
    wrong_type = copy.deepcopy(manifest("Deployment", "wowevent-worker"))
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSIONS[-1], strict=True)
    unknown = copy.deepcopy(manifest("Deployment", "wowevent-worker"))
    unknown["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSIONS[-1], strict=True)


def _workloads() -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] in ("Deployment", "StatefulSet")]


def _container(name: str) -> dict[str, Any]:
    container: dict[str, Any] = manifest("Deployment", name)["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_reference_between_manifests_resolves() -> None:
    objects = {(doc["kind"], doc["metadata"]["name"]) for _, doc in manifests()}
    namespaces = {doc["metadata"].get("namespace") for _, doc in manifests()} - {None}
    assert namespaces == {"wowevent"}
    assert ("Namespace", "wowevent") in objects
    config = manifest("ConfigMap", "wowevent-config")["data"]
    secret = manifest("Secret", "wowevent-secrets")["stringData"]
    for workload in _workloads():
        pod = workload["spec"]["template"]
        name = workload["metadata"]["name"]
        assert _selects(workload["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
        assert ("ServiceAccount", pod["spec"]["serviceAccountName"]) in objects, name
        for container in pod["spec"]["containers"]:
            defined: set[str] = set()
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == "wowevent-config"
                defined |= set(config)
            for var in container.get("env", []):
                # $(VAR) expands only variables defined before it; an unknown one stays literal.
                for ref in re.findall(r"\$\((\w+)\)", var.get("value", "")):
                    assert ref in defined, f"{name}: {var['name']} uses $({ref}) before it is set"
                key_ref = var.get("valueFrom", {}).get("secretKeyRef")
                if key_ref:
                    assert key_ref["name"] == "wowevent-secrets" and key_ref["key"] in secret
                defined.add(var["name"])
            for arg in container.get("args", []):
                for ref in re.findall(r"\$\((\w+)\)", arg):
                    assert ref in defined, f"{name}: args use $({ref}), which is not set"
    pods = {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in _workloads()
    }
    for _, doc in manifests():
        kind = doc["kind"]
        if kind == "Service":
            selected = [
                n for n, labels in pods.items() if _selects(doc["spec"]["selector"], labels)
            ]
            assert len(selected) == 1, f"Service {doc['metadata']['name']} selects {selected}"
        elif kind == "PodDisruptionBudget":
            selector = doc["spec"]["selector"]["matchLabels"]
            assert any(_selects(selector, labels) for labels in pods.values()), doc
        elif kind == "HorizontalPodAutoscaler":
            target = doc["spec"]["scaleTargetRef"]
            assert (target["kind"], target["name"]) == ("Deployment", "wowevent-worker")


def test_only_the_buss_pods_may_reach_redis() -> None:
    policy = manifest("NetworkPolicy", "redis-from-bus-only")["spec"]
    pods = {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in _workloads()
    }
    assert [
        n for n, labels in pods.items() if _selects(policy["podSelector"]["matchLabels"], labels)
    ] == ["redis"]
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    in_namespace = [peer["podSelector"]["matchLabels"] for peer in rule["from"]
                    if "namespaceSelector" not in peer]  # fmt: skip
    for name in ("wowevent-worker", "wowevent-service"):
        assert any(_selects(sel, pods[name]) for sel in in_namespace), f"{name} cannot reach Redis"


def _time_limit(command: list[str]) -> int:
    return int(command[command.index("--time-limit") + 1])


def test_workers_shut_down_warm_within_their_grace_period() -> None:
    deployment = manifest("Deployment", "wowevent-worker")
    spec = deployment["spec"]
    container = _container("wowevent-worker")
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > _time_limit(
        container["command"]
    )
    # Same image and command as the compose worker, which the integration test runs.
    assert container["command"] == compose()["services"]["worker"]["command"]
    assert container["image"] == compose()["services"]["worker"]["image"]
    probe = " ".join(container["livenessProbe"]["exec"]["command"])
    assert "inspect ping" in probe and "$HOSTNAME" in probe
    assert container["livenessProbe"]["timeoutSeconds"] > 10  # above the ping's own --timeout
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    env = {var["name"]: var.get("value") for var in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"] in mounts  # a writable, per-pod directory
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    hpa = manifest("HorizontalPodAutoscaler", "wowevent-worker")["spec"]
    assert hpa["minReplicas"] >= spec["replicas"] and hpa["maxReplicas"] > hpa["minReplicas"]
    pdb = manifest("PodDisruptionBudget", "wowevent-worker")["spec"]
    assert 0 < pdb["minAvailable"] < spec["replicas"]


def test_the_service_is_probed_on_ready_and_health() -> None:
    container = _container("wowevent-service")
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["command"] == compose()["services"]["service"]["command"]
    port = container["ports"][0]
    assert port["name"] == container["readinessProbe"]["httpGet"]["port"]
    service = manifest("Service", "wowevent-service")["spec"]
    assert service["ports"][0]["targetPort"] == port["name"]
    config = manifest("ConfigMap", "wowevent-config")["data"]
    assert config["WOWEVENT_SERVE_PORT"] == str(port["containerPort"])
    assert config["WOWEVENT_SERVE_HOST"] == "0.0.0.0"
    token = [v for v in container["env"] if v["name"] == "WOWEVENT_ADMIN_TOKEN"]
    assert token[0]["valueFrom"]["secretKeyRef"]["key"] == "admin-token"


def test_redis_persists_with_aof_and_refuses_to_evict() -> None:
    statefulset = manifest("StatefulSet", "redis")["spec"]
    container = statefulset["template"]["spec"]["containers"][0]
    args = container["args"]
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs["--appendonly"] == "yes"
    assert pairs["--appendfsync"] == "everysec"
    assert pairs["--maxmemory-policy"] == "noeviction"
    assert pairs["--requirepass"] == "$(REDIS_PASSWORD)"
    (claim,) = statefulset["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == pairs["--dir"]
    assert manifest("Service", "redis")["spec"]["clusterIP"] == "None"
    config = manifest("ConfigMap", "wowevent-config")["data"]
    assert config["REDIS_ADDRESS"].startswith("redis.wowevent.svc")


def test_every_image_is_pinned() -> None:
    images = [c["image"] for w in _workloads() for c in w["spec"]["template"]["spec"]["containers"]]
    images += [spec["image"] for spec in compose()["services"].values()]
    for image in images:
        assert PINNED_TAG.match(image), f"image {image!r} is not pinned to a version"
    assert not any(image.endswith(":latest") for image in images)


# ---- compose ------------------------------------------------------------------------------------


def test_every_compose_service_has_a_healthcheck_or_a_reason() -> None:
    for name, spec in compose()["services"].items():
        check = spec.get("healthcheck")
        if check is None:
            assert spec.get("x-healthcheck-reason"), f"{name} has no healthcheck and no reason"
            continue
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert not check.get("disable"), name


def test_compose_ports_are_bound_to_loopback() -> None:
    for name, spec in compose()["services"].items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_redis_is_durable() -> None:
    doc = compose()
    redis_spec = doc["services"]["redis"]
    command = redis_spec["command"]
    pairs = dict(zip(command[1::2], command[2::2], strict=True))
    assert pairs["--appendonly"] == "yes"
    assert pairs["--appendfsync"] == "everysec"
    assert pairs["--maxmemory-policy"] == "noeviction"
    volume, _, target = redis_spec["volumes"][0].partition(":")
    assert target == "/data"  # the redis image's working directory, where the AOF lives
    assert volume in doc["volumes"], "Redis data must be a named volume that outlives containers"
    for name in ("worker", "service", "flower"):
        assert doc["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_worker_shuts_down_warm_within_its_grace_period() -> None:
    worker = compose()["services"]["worker"]
    grace = worker["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > _time_limit(worker["command"])
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"  # Celery's warm shutdown
    assert "-E" in worker["command"]  # Flower sees nothing without task events
    assert worker["deploy"]["replicas"] >= 2
    assert worker["environment"]["PROMETHEUS_MULTIPROC_DIR"]


def test_files_the_compose_stack_mounts_and_builds_exist() -> None:
    base = COMPOSE_FILE.parent
    for name, spec in compose()["services"].items():
        build = spec.get("build")
        if build:
            assert (base / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (base / source).exists(), f"{name} mounts missing {source}"
    prometheus = yaml.safe_load((base / "prometheus" / "prometheus-compose.yml").read_text())
    for rules in prometheus["rule_files"]:
        assert (base / "prometheus" / rules).exists()
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [
        f"service:{compose()['services']['service']['environment']['WOWEVENT_SERVE_PORT']}"
    ]
    assert prometheus["scrape_configs"][1]["dns_sd_configs"][0]["port"] == int(
        compose()["services"]["worker"]["environment"]["WOWEVENT_METRICS_PORT"]
    )
    datasources = yaml.safe_load(
        (base / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (base / "grafana" / "provisioning" / "dashboards" / "wowevent.yml").read_text()
    )
    mounted = [v.split(":")[1] for v in compose()["services"]["grafana"]["volumes"]]
    dashboards = providers["providers"][0]["options"]["path"]
    assert any(m.startswith(dashboards + "/") and m.endswith(".json") for m in mounted)


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: run scripts/ensure-prometheus.sh as root")
    # promtool resolves rule_files next to the config, as Prometheus does in its container.
    base = COMPOSE_FILE.parent / "prometheus"
    shutil.copy(base / "prometheus-compose.yml", tmp_path / "prometheus.yml")
    shutil.copy(base / "alerts.yml", tmp_path / "alerts.yml")
    out = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_interpolation_follows_compose_rules() -> None:
    assert interpolate("${TOKEN:-}", {}) == ""
    assert interpolate("${TOKEN:-x}", {"TOKEN": "t"}) == "t"
    assert interpolate("celery@$$HOSTNAME", {}) == "celery@$HOSTNAME"


# ---- Dockerfile ---------------------------------------------------------------------------------


def _console_scripts() -> dict[str, str]:
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}


def test_the_dockerfile_builds_in_stages_and_runs_unprivileged() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    _, final = stages[-1]
    copied_from = [args for instr, args in final if instr == "COPY" and "--from=" in args]
    assert copied_from, "the runtime stage copies the built virtualenv from an earlier stage"
    built = stages[0][0]
    assert any(f"--from={built}" in args for args in copied_from)
    users = [args for instr, args in final if instr == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    runs = " ".join(args for instr, args in final if instr == "RUN")
    for tool in ("gcc", "build-essential", "apt-get install", "pip install"):
        assert tool not in runs, f"the runtime stage runs {tool!r}"
    assert re.search(rf"useradd .*\b{re.escape(user)}\b", runs), f"USER {user} is never created"
    checks = [args for instr, args in final if instr == "HEALTHCHECK"]
    assert len(checks) == 1 and " CMD " in checks[0]


def test_the_images_commands_exist_in_the_installed_package() -> None:
    _, final = dockerfile_stages()[-1]
    (cmd,) = [exec_form(args) for instr, args in final if instr == "CMD"]
    assert not [args for instr, args in final if instr == "ENTRYPOINT"]
    scripts = _console_scripts()
    assert scripts["wowevent"] == "wowevent_kombu.cli:main"
    programs = {cmd[0]} | {
        spec["command"][0] for spec in compose()["services"].values() if "build" in spec
    }
    assert programs == {"wowevent", "celery"}
    for program in programs:
        assert program in scripts and (VENV_BIN / program).exists(), program
    # The image's default command parses (and its app, copied into /app, imports).
    copies = [args for instr, args in final if instr == "COPY" and "--from=" not in args]
    assert any(args.split()[0] == "examples" for args in copies)
    out = subprocess.run(
        [str(VENV_BIN / cmd[0]), *cmd[1:], "--help"], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Serve probes, /metrics" in out.stdout


def test_the_dockerfile_copies_only_files_that_exist_and_are_not_ignored() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for _, instructions in dockerfile_stages():
        for instr, args in instructions:
            if instr == "COPY" and "--from=" not in args:
                *sources, _ = args.split()
                for source in sources:
                    assert (ROOT / source).exists(), source
                    assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


# ---- the docs' commands -------------------------------------------------------------------------

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\s*$")
_INLINE = re.compile(r"`([^`\n]+)`")
_START = re.compile(r"(?<![\w/.\-\"'=])wowevent(?=\s|$)")
_SHELL_BLOCKS = {"", "sh", "bash", "shell", "console", "text"}
_GROUP_OPTIONS_WITH_VALUE = {"-A", "--app", "--broker", "--exchange"}


def _doc_commands() -> list[tuple[str, str]]:
    """``(where, command line)`` for every ``wowevent ...`` in shell blocks and inline code."""
    found = []
    for path in DOC_FILES:
        block: str | None = None
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fence = _FENCE.match(line.strip())
            if fence:
                block = fence.group(1) if block is None else None
                continue
            if block is None:
                chunks = _INLINE.findall(line)
            elif block in _SHELL_BLOCKS:
                chunks = [line]
            else:
                continue
            for chunk in chunks:
                for start in _START.finditer(chunk):
                    where = f"{path.relative_to(ROOT)}:{number}"
                    found.append((where, chunk[start.start() :]))
    return found


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=True)
    except ValueError:
        return command.split("#")[0].split()


def _resolve(words: list[str]) -> tuple[list[str], list[str], click.Command, list[str]]:
    """Group options, the subcommand path, the command, and the options used with it."""
    group_opts: list[str] = []
    rest = words[1:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        group_opts.append(option)
        if option in _GROUP_OPTIONS_WITH_VALUE and rest:
            group_opts.append(rest.pop(0))
    command: click.Command = cli
    path: list[str] = []
    while rest and isinstance(command, click.Group) and rest[0] in command.commands:
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    options = []
    for word in rest:
        if word in ("|", "&&", ";", ">", "2>&1"):
            break
        word = word.strip("[]")
        if word.startswith("-") and word not in ("-", "--"):
            options.append(word.split("=")[0])
    return group_opts, path, command, options


def test_the_docs_name_wowevent_commands() -> None:
    commands = _doc_commands()
    assert len(commands) > 30
    where = {w.split(":")[0] for w, _ in commands}
    assert "docs/runbooks/operations.md" in where and "README.md" in where


@pytest.mark.parametrize(("where", "command"), _doc_commands(), ids=lambda value: str(value)[:60])
def test_every_wowevent_command_in_the_docs_is_real(where: str, command: str) -> None:
    words = _split(command)
    group_opts, path, target, options = _resolve(words)
    known = {opt for param in target.params for opt in param.opts + param.secondary_opts}
    known |= {"--help"}
    unknown = [option for option in options if option not in known]
    assert not unknown, f"{where}: `{command}` uses unknown option(s) {unknown}"
    leftover = words[1 + len(group_opts) + len(path) :]
    if isinstance(target, click.Group) and leftover and not leftover[0].startswith(("-", "<")):
        assert leftover[0] in ("...", "…"), f"{where}: {leftover[0]!r} is not a subcommand"
    result = CliRunner().invoke(cli, [*group_opts, *path, "--help"], prog_name="wowevent")
    assert result.exit_code == 0, f"{where}: `{command}`\n{result.output}"


def test_a_documented_command_runs_as_the_installed_script() -> None:
    out = subprocess.run(
        [str(VENV_BIN / "wowevent"), "dlq", "retry", "--help"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--dry-run" in out.stdout


# ---- compose with RabbitMQ as the broker ------------------------------------------------------


def test_the_rabbitmq_overlay_moves_the_broker_and_keeps_redis_as_the_store() -> None:
    doc = compose(RABBITMQ_OVERLAY)
    rabbit = doc["services"]["rabbitmq"]
    assert PINNED_TAG.match(rabbit["image"]), rabbit["image"]
    assert all(str(p).startswith("127.0.0.1:") for p in rabbit["ports"])
    assert rabbit["healthcheck"]["test"][0] == "CMD"
    assert "rabbitmq-data" in doc["volumes"], "RabbitMQ's queues must outlive its container"
    for name in ("worker", "service", "flower"):
        env = service_env(name, {}, doc)
        assert env["WOWEVENT_BROKER_URL"].startswith("amqp://"), name
        assert env["WOWEVENT_STORE_URL"] == "redis://redis:6379/0", name
        assert env["WOWEVENT_EXCHANGE"] == "wowevent", name  # kept from the base file
        depends = doc["services"][name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    settings = Settings.load({}, service_env("worker", {}, doc))
    assert settings.amqp and settings.redis_url == "redis://redis:6379/0"
