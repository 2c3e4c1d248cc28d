"""Redis with a password, an ACL user and TLS: every part of the bus works, no password leaks."""

import json
import subprocess
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import urlopen

import pytest
import redis
from click.testing import CliRunner

from tests.conftest import wait_for
from tests.integration.serving import serving
from tests.reliability.counting import publish_all, publisher, runs
from wowevent_kombu.cli import EXIT_UNAVAILABLE, cli
from wowevent_kombu.testing.redisserver import free_port, redis_server_binary

ADMIN_PASSWORD = "adm1n-Pw-of-the-default-user"
APP_USER = "wowapp"
APP_PASSWORD = "s3cret/with:odd@chars"  # characters a URL must escape
SUBSCRIBERS = ("alpha", "beta")


def acl_file(directory):
    path = directory / "users.acl"
    path.write_text(
        f"user default on >{ADMIN_PASSWORD} ~* &* +@all\n"
        f"user {APP_USER} on >{APP_PASSWORD} ~* &* +@all\n"
    )
    return path


def tls_material(directory):
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "1", "-subj", "/CN=wowevent-test-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "1",
            "-extfile", "ext.cnf")  # fmt: skip
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


def lacks_tls() -> bool:
    """Whether redis-server refuses the TLS directives (built without BUILD_TLS)."""
    try:
        probe = subprocess.run(
            [str(redis_server_binary()), "--port", "0", "--tls-port", "0", "--daemonize", "no"],
            capture_output=True, text=True, timeout=2,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False  # it started (and listened nowhere): the directives are known
    return "tls" in (probe.stdout + probe.stderr).lower()


@pytest.fixture(params=["password", "query-password", "acl-user", "tls-acl-user"])
def secured(request, private_redis, tmp_path):
    """(broker URL, the secret texts that must never be shown) for one way of securing Redis."""
    users = acl_file(tmp_path)
    user, password = quote(APP_USER, safe=""), quote(APP_PASSWORD, safe="")
    secrets = [APP_PASSWORD, password]
    if request.param == "password":
        server = private_redis(extra=["--aclfile", str(users)])
        admin = quote(ADMIN_PASSWORD, safe="")
        return f"redis://:{admin}@127.0.0.1:{server.port}/0", [ADMIN_PASSWORD, admin]
    if request.param == "query-password":  # Kombu's own parser fails on this form
        server = private_redis(extra=["--aclfile", str(users)])
        admin = quote(ADMIN_PASSWORD, safe="")
        return f"redis://127.0.0.1:{server.port}/0?password={admin}", [ADMIN_PASSWORD, admin]
    if request.param == "acl-user":
        server = private_redis(extra=["--aclfile", str(users)])
        return f"redis://{user}:{password}@127.0.0.1:{server.port}/0", secrets
    if lacks_tls():
        pytest.skip("this redis-server was built without TLS support (BUILD_TLS): TLS untested")
    ca, cert, key = tls_material(tmp_path)
    port = free_port()
    # The later --port 0 switches plain TCP off: the port answers TLS only.
    server = private_redis(port=port, extra=[
        "--aclfile", str(users), "--port", "0", "--tls-port", str(port),
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
        "--tls-auth-clients", "no",
    ])  # fmt: skip
    query = f"ssl_cert_reqs=required&ssl_ca_certs={quote(str(ca), safe='')}"
    return f"rediss://{user}:{password}@127.0.0.1:{server.port}/0?{query}", secrets


def shown_nowhere(secrets, *texts):
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a password appears in: {text[:500]}"


def test_secured_redis_end_to_end_without_leaking_the_password(secured, start_worker, exchange,
                                                                tmp_path):  # fmt: skip
    url, secrets = secured
    client = redis.Redis.from_url(url)
    assert client.ping()
    env = {"WOWEVENT_TEST_REDIS_URL": url, "WOWEVENT_TEST_EXCHANGE": exchange}
    worker = start_worker("tests.apps.load", env=env, pool="prefork", concurrency=2)
    bus = publisher(url, exchange)
    ids = publish_all(bus, 200, "load.item")
    cli_args = ["--broker", url, "--exchange", exchange]
    runner = CliRunner()
    published = runner.invoke(cli, [*cli_args, "--json", "publish", "load.cli", '{"n": 1}'])
    assert published.exit_code == 0, published.output
    ids.append(json.loads(published.output)["id"])
    wait_for(lambda: all(runs(client, exchange)[(s, i)] for s in SUBSCRIBERS for i in ids),
             timeout=60, message="every event handled by the real worker")  # fmt: skip
    outputs = [published.output, repr(bus), repr(bus.settings), str(bus.settings)]
    for command in (
        ["subscribers"],
        ["--json", "subscribers"],
        ["status"],
        ["--json", "status"],
        ["dlq", "list"],
        ["dlq", "stats"],
        ["log", "stats"],
        ["log", "tail"],
    ):
        result = runner.invoke(cli, [*cli_args, *command])
        assert result.exit_code == 0, (command, result.output)
        outputs.append(result.output)
    with serving(url, exchange, tmp_path / "serve.log") as (_, base):
        for path in ("/status", "/ready", "/metrics", "/health"):
            try:
                reply = urlopen(base + path, timeout=10)
            except HTTPError as answer:  # /ready is 503 here: the observed app is not bound
                reply = answer
            outputs.append(reply.read().decode())
    outputs.append((tmp_path / "serve.log").read_text())
    worker.stop()
    outputs.append(worker.text())
    shown_nowhere(secrets, *outputs)
    bus.close()


def test_a_wrong_password_is_a_clear_error_that_does_not_echo_it(secured, exchange):
    url, secrets = secured
    wrong = "not-the-Right-pw"
    bad_url = url.replace(quote(secrets[0], safe=""), wrong).replace(secrets[0], wrong)
    assert bad_url != url
    result = CliRunner().invoke(cli, ["--broker", bad_url, "--exchange", exchange,
                                      "publish", "load.item", "{}"])  # fmt: skip
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    shown_nowhere([wrong, *secrets], result.output)
