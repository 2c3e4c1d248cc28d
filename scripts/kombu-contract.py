#!/usr/bin/env python3
"""Run Kombu's own Redis transport tests against the bus's channel, QoS and transport classes.

Kombu ships its unit tests in its sdist (``t/unit/transport/test_redis.py``). This script
fetches the sdist of the installed Kombu (cached in ``--sdists``), and runs that test module
with :mod:`wowevent_kombu.brokers.redis`'s classes swapped into ``kombu.transport.redis``
before the module is imported: every test that builds a channel, a QoS or a transport then
builds ours. A test may fail only as :data:`EXPECTED` says, with its reason; any other
failure, and any expected one that now passes (the list must be kept true), fails the script.
The module is run once with stock Kombu first: a test that fails there too (Kombu's own test
against this redis-py, say) is reported, and not counted as a difference of the bus.

Run it with the Python of the environment to check (``make test-matrix`` does, per cell).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import kombu

MODULE = "t/unit/transport/test_redis.py"

CONN_OR_ACQUIRE = (
    "GuardedChannel.conn_or_acquire keeps one redis-py client per connection pool and "
    "checks client.connection_pool against the channel's pool; Kombu's test Client has no "
    "connection_pool (every redis-py client has one)"
)

EXPECTED: dict[str, str] = {
    # test id (class::name) -> reviewed reason it fails against the bus's classes. A test the
    # installed Kombu does not have is not looked for.
    **dict.fromkeys(
        (
            "test_Channel::test_basic_consume_when_fanout_queue",
            "test_Channel::test_delivery_tag_is_uuid",
            "test_Channel::test_empty_queues_key",
            "test_Channel::test_has_queue",
            "test_Channel::test_priority_cycle_preserves_queue_order",
            "test_Channel::test_publish_batch_preserves_direct_routing_priority_and_order",
            "test_Channel::test_publish_batch_preserves_fanout_topic",
            "test_Channel::test_publish_batch_preserves_topic_routing",
            "test_Redis::test_publish__consume",
            "test_Redis::test_publish__get_redispyv2",
            "test_Redis::test_publish__get_redispyv3",
            "test_Redis::test_purge",
        ),
        CONN_OR_ACQUIRE,
    ),
    "test_Channel::test_do_restore_message": (
        "by design: GuardedChannel._do_restore_message re-raises connection errors (this "
        "test's transport counts KeyError as one) so the restore transaction aborts and keeps "
        "the unacked record, where Kombu logs and EXECs, deleting the record of a message it "
        "did not push back; other errors are logged on wowevent_kombu's logger, not Kombu's crit"
    ),
    "test_Channel::test_do_restore_message_other_error_logged_with_payload": (
        "by design: a restore that fails on a bad binding is logged (critical, with the "
        "payload) on wowevent_kombu.brokers.redis.channel's logger, not kombu.transport.redis.crit"
    ),
    "test_MultiChannelPoller::test_qos_reject": (
        "by design: AtomicQoS.reject without requeue acks, removing the unacked record with "
        "one script call (GuardedChannel.forget) instead of QoS._remove_from_indices's pipeline"
    ),
}
"""Reviewed differences: the tests that fail against the bus's classes, and why."""


SWAP = '''
"""Loaded with -p before collection: the bus's classes in place of Kombu's Redis ones."""
from kombu.transport import redis as kombu_redis
from wowevent_kombu.brokers.redis import channel, qos, transport

kombu_redis.QoS = qos.AtomicQoS
kombu_redis.Channel = channel.GuardedChannel
kombu_redis.Transport = transport.Transport
if hasattr(kombu_redis, "SentinelChannel"):
    kombu_redis.SentinelChannel = transport.GuardedSentinelChannel
    kombu_redis.SentinelTransport = transport.SentinelTransport
'''

PYTEST_INI = """[pytest]
python_classes = test_*
"""


def sdist_tests(version: str, sdists: Path) -> Path:
    """The ``t/`` folder of Kombu ``version``'s sdist, downloaded and unpacked once."""
    sdists.mkdir(parents=True, exist_ok=True)
    unpacked = sdists / f"kombu-{version}-tests"
    if (unpacked / MODULE).exists():
        return unpacked
    archive = sdists / f"kombu-{version}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
             f"kombu=={version}", "-d", str(sdists)],
            check=True,
        )  # fmt: skip
    staging = Path(tempfile.mkdtemp(dir=sdists))
    with tarfile.open(archive) as tar:
        # Only the tests: the sdist's own kombu/ must not shadow the installed one.
        members = [m for m in tar.getmembers() if m.name.startswith(f"kombu-{version}/t/")]
        tar.extractall(staging, members=members, filter="data")
    (staging / f"kombu-{version}").rename(unpacked)
    staging.rmdir()
    return unpacked


def outcomes(junit: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``{class::name: "passed" | "failed" | "skipped"}`` from pytest's JUnit XML, and each
    failure's message."""
    found: dict[str, str] = {}
    messages: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            found[name] = "failed"
            messages[name] = (
                (problem.get("message") or "").splitlines()[0][:300]
                if (problem.get("message"))
                else ""
            )
        elif case.find("skipped") is not None:
            found[name] = "skipped"
        else:
            found[name] = "passed"
    return found, messages


def run(
    tests: Path, scratch: Path, swap: bool, extra: list[str]
) -> tuple[dict[str, str], dict[str, str], str]:
    """Kombu's test module, with the bus's classes swapped in or (``swap=False``) stock."""
    root = Path(__file__).resolve().parent.parent
    junit = scratch / f"junit-{'bus' if swap else 'stock'}.xml"
    plugin = ["-p", "wowevent_swap"] if swap else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(scratch), str(root)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin, "-p", "no:cacheprovider", "-q", "--no-header",
         "-o", "addopts=", f"--junitxml={junit}", MODULE, *extra],
        cwd=tests, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if not junit.exists():
        return {}, {}, proc.stdout + proc.stderr
    found, messages = outcomes(junit)
    return found, messages, proc.stdout + proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdists", type=Path, default=Path(".matrix/sdists"))
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args()
    version = kombu.__version__
    tests = sdist_tests(version, args.sdists.resolve())
    Path(tests, "pytest.ini").write_text(PYTEST_INI)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        (scratch / "wowevent_swap.py").write_text(SWAP)
        # Stock Kombu first: a test that fails without the bus (say, on this redis-py) is
        # Kombu's own failure here, not a difference of the bus.
        stock, _, _ = run(tests, scratch, False, args.pytest_args)
        found, messages, output = run(tests, scratch, True, args.pytest_args)
    if not found:
        print(output[-20000:])
        print("kombu-contract: 0 passed, 1 failed")
        return 1
    own = sorted(t for t, o in found.items() if o == "failed" and stock.get(t) == "failed")
    failed = sorted(t for t, o in found.items() if o == "failed" and t not in own)
    unexpected = [t for t in failed if t not in EXPECTED]
    stale = sorted(t for t in EXPECTED if found.get(t) == "passed")
    passed = sum(1 for o in found.values() if o == "passed")
    skipped = sum(1 for o in found.values() if o == "skipped")
    print(f"Kombu {version}: {MODULE} with wowevent_kombu.brokers.redis's classes: "
          f"{len(found)} tests, {passed} passed, {len(failed) - len(unexpected)} expected "
          f"differences, {len(unexpected)} unexpected failures, {len(own)} failing with stock "
          f"Kombu too, {skipped} skipped")  # fmt: skip
    for test in own:
        print(f"  fails with stock Kombu too  {test}: {messages.get(test, '')}")
    for test in failed:
        if test in EXPECTED:
            print(f"  expected  {test}: {EXPECTED[test]}")
    for test in unexpected:
        print(f"  UNEXPECTED FAILURE  {test}: {messages.get(test, '')}")
    for test in stale:
        print(f"  STALE: listed as expected but passes, remove it  {test}")
    if unexpected and os.environ.get("KOMBU_CONTRACT_VERBOSE"):
        print(output[-20000:])
    bad = len(unexpected) + len(stale)
    # The plain closing line: tests passed, and failures outside the reviewed list (or stale).
    print(f"kombu-contract: {passed} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
