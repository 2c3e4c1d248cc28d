"""A short soak (``make soak`` runs the long one): no loss, no duplicate, memory reported.

Memory figures are printed, not asserted (they depend on the machine); what is asserted is
exact: every event handled once by each subscriber, no delivery left in a queue or unacked,
and no key of the bus left behind but the log, the dead letters and the binding version.
"""

from benchmarks.soak import describe, soak
from tests.reliability.counting import report

EVENTS = 5_000


def test_short_soak_loses_nothing_and_reports_memory(private_redis, tmp_path):
    server = private_redis()
    result = soak(server.url, EVENTS, logs=tmp_path, timeout=110)
    print("\n" + "\n".join(describe(result)))
    assert result.lost == 0
    assert result.duplicates == 0
    assert all(c["handled"] == EVENTS for c in result.counts.values())
    assert result.leftover_keys == []
    assert [key.rsplit(":", 2)[-2:] for key in result.other_keys] == [["bindings", "version"]]
    report("soak", result.as_dict())
