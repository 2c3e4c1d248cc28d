"""The event envelope: validation, CloudEvents form, round trips, correlation."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given
from hypothesis import strategies as st

from wowevent_kombu import Event, EventEncodingError, InvalidEventError, InvalidEventTypeError
from wowevent_kombu.core.event import encode_json


@pytest.mark.parametrize(
    ("event_type", "fragment"),
    [("", "empty"), ("order..created", "empty word at position 2"), ("order.*", "wildcards"),
     ("order.#", "wildcards"), ("order created", "word 1"), (".order", "position 1"),
     ("o" * 300, "limit"), (7, "must be a string")],
)  # fmt: skip
def test_bad_types_name_the_bad_part(event_type, fragment):
    with pytest.raises(InvalidEventTypeError, match=fragment):
        Event(type=event_type)


def test_defaults_and_microsecond_time():
    event = Event(type="order.created", data={"n": 1})
    assert event.source == "wowevent" and len(event.id) == 36
    assert event.time.tzinfo is not None
    assert event.to_cloudevent()["time"].endswith("Z")
    assert len(event.to_cloudevent()["time"].split(".")[1]) == 7  # six digits and Z


def test_naive_time_is_refused():
    with pytest.raises(InvalidEventError, match="timezone-aware"):
        Event(type="a.b", time=datetime(2026, 1, 1))


def test_cloudevent_form_omits_absent_optionals():
    doc = Event(type="a.b", data={"x": 1}, correlation_id="req-7").to_cloudevent()
    assert doc["specversion"] == "1.0" and doc["correlationid"] == "req-7"
    assert "subject" not in doc and "causationid" not in doc


def test_round_trip_is_lossless():
    event = Event(
        type="order.paid", data={"amount": 12.5, "items": ["a", "b"], "note": "ünïcode"},
        source="api", subject="order-1", correlation_id="c1", causation_id="p1",
        schema_version="1.2.0", dataschema="urn:schema:order.paid:1.2.0",
        time=datetime(2026, 11, 27, 9, 0, 0, 123456, tzinfo=UTC),
    )  # fmt: skip
    assert Event.from_json(event.to_json()) == event
    assert Event.from_cloudevent(json.loads(event.to_json())) == event


def test_official_sdk_reads_our_output():
    event = Event(type="order.paid", data={"a": 1}, source="api", correlation_id="c1",
                  causation_id="p1", schema_version="1.0.0", subject="s")  # fmt: skip
    parsed = JSONFormat().read(None, event.to_json().encode())
    assert parsed.get_type() == "order.paid"
    assert parsed.get_id() == event.id
    assert parsed.get_data() == {"a": 1}
    assert parsed.get_extension("correlationid") == "c1"
    assert parsed.get_extension("causationid") == "p1"
    assert parsed.get_extension("schemaversion") == "1.0.0"


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_trace_context_round_trips_through_the_official_sdk():
    """The distributed-tracing extension: the CloudEvent the HTTP binding of another service
    hands over keeps its trace context through the bus and back out."""
    event = Event(type="order.paid", data={"a": 1}, traceparent=TRACEPARENT,
                  tracestate="congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")  # fmt: skip
    fmt = JSONFormat()
    parsed = fmt.read(None, event.to_json().encode())
    assert parsed.get_extension("traceparent") == TRACEPARENT
    assert parsed.get_extension("tracestate") == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    again = Event.from_json(fmt.write(parsed))
    assert again == event
    assert again.traceparent == TRACEPARENT
    # Absent rather than null when the event carries none (the SDK refuses null optionals).
    plain = fmt.read(None, Event(type="a.b").to_json().encode())
    assert Event.from_json(fmt.write(plain)).traceparent is None
    with pytest.raises(InvalidEventError, match="traceparent"):
        Event(type="a.b", traceparent="00-abc\n")


def test_time_in_other_zone_is_normalised_to_utc():
    moment = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    doc = Event(type="a.b", time=moment).to_cloudevent()
    assert doc["time"] == "2026-01-01T10:00:00.000000Z"


def test_child_and_caused_by_carry_correlation():
    parent = Event(type="order.created", correlation_id="req-7")
    child = Event.child_of(parent, "payment.requested", {"x": 1})
    assert child.correlation_id == "req-7" and child.causation_id == parent.id
    orphan = Event(type="a.b")
    derived = Event(type="c.d").caused_by(orphan)
    assert derived.correlation_id == orphan.id and derived.causation_id == orphan.id


@pytest.mark.parametrize(
    "data", [float("nan"), float("inf"), {"b": b"bytes"}, {"o": object()}, {1j: 1}]
)
def test_non_json_data_is_refused(data):
    with pytest.raises(EventEncodingError, match="not JSON-serialisable"):
        Event(type="a.b", data=data).to_json()


def test_unknown_attributes_and_bad_documents():
    good = Event(type="a.b").to_cloudevent()
    with pytest.raises(InvalidEventError, match="does not carry: colour"):
        Event.from_cloudevent({**good, "colour": "red"})
    with pytest.raises(InvalidEventError, match="lacks required"):
        Event.from_cloudevent({"type": "a.b"})
    with pytest.raises(InvalidEventError, match="specversion"):
        Event.from_cloudevent({**good, "specversion": "0.3"})
    with pytest.raises(InvalidEventError, match="not a JSON CloudEvent"):
        Event.from_json(b"\xff\xfe")
    with pytest.raises(InvalidEventError, match="RFC 3339"):
        Event.from_cloudevent({**good, "time": "yesterday"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=20,
)  # fmt: skip


# CloudEvents' String type: no control characters, surrogates or noncharacters (Cn, with the
# unassigned code points).
attribute_text = st.text(st.characters(exclude_categories=("Cc", "Cs", "Cn")), min_size=1)


@given(json_values, attribute_text, st.none() | attribute_text)
def test_round_trip_property(data, source, subject):
    event = Event(type="prop.test", data=data, source=source, subject=subject)
    assert Event.from_json(encode_json(event.to_cloudevent())) == event
