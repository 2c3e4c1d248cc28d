"""The circuit breaker: its settings, the counting rules and its state in a real Redis."""

from __future__ import annotations

import pytest
import redis
from celery.exceptions import Ignore, Retry
from celery.exceptions import Reject as CeleryReject

from tests.conftest import wait_for
from wowevent_kombu.core.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, open_time
from wowevent_kombu.core.errors import ConfigurationError, InvalidEventError, Reject
from wowevent_kombu.worker.breaker import BreakerOpen, counts_as_failure
from wowevent_kombu.worker.breakerstore import BreakerStore


@pytest.fixture
def store(redis_client: redis.Redis, exchange: str) -> BreakerStore:
    return BreakerStore(redis_client, exchange)


FAST = CircuitBreaker(failure_rate=0.5, min_attempts=4, window=5, open_for=0.3, trials=2)


@pytest.mark.parametrize(
    ("reopens", "expected"), [(0, 30.0), (1, 60.0), (2, 120.0), (5, 600.0), (100, 600.0)]
)
def test_open_time_doubles_per_failed_round_up_to_the_cap(reopens: int, expected: float) -> None:
    assert open_time(30, 600, reopens) == expected
    assert CircuitBreaker().open_time(reopens) == expected


@pytest.mark.parametrize(
    "fields",
    [{"failure_rate": 0}, {"failure_rate": 1.5}, {"min_attempts": 0}, {"window": 0},
     {"open_for": 100_000}, {"trials": 0}, {"open_for": 60, "max_open_for": 30}],
)  # fmt: skip
def test_out_of_range_settings_are_refused_naming_the_field(fields: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(fields))):
        CircuitBreaker(**fields)  # type: ignore[arg-type]


def test_the_option_takes_an_instance_a_dict_or_nothing() -> None:
    assert CircuitBreaker.coerce(None) is None
    assert CircuitBreaker.coerce(FAST) is FAST
    assert CircuitBreaker.coerce({"min_attempts": 4}) == CircuitBreaker(min_attempts=4)
    with pytest.raises(ConfigurationError):
        CircuitBreaker.coerce({"nope": 1})
    with pytest.raises(ConfigurationError):
        CircuitBreaker.coerce("on")


class Task:
    def __init__(self, auto: tuple[type[BaseException], ...] = (), dont: tuple = ()) -> None:
        self.autoretry_for = auto
        self.dont_autoretry_for = (*dont, InvalidEventError, Reject, BreakerOpen)


def test_failures_count_as_the_subscriber_retries_them() -> None:
    plain = Task()
    assert counts_as_failure(plain, RuntimeError("down"))
    assert counts_as_failure(plain, Retry(exc=RuntimeError("down")))
    for exc in (Reject("no"), InvalidEventError("bad"), CeleryReject("x"), Ignore(), BreakerOpen()):
        assert not counts_as_failure(plain, exc), exc
    picky = Task(auto=(ConnectionError,), dont=(TimeoutError,))
    assert counts_as_failure(picky, ConnectionRefusedError())
    assert not counts_as_failure(picky, ValueError())
    assert not counts_as_failure(picky, TimeoutError())
    assert not counts_as_failure(picky, KeyboardInterrupt())


def test_breaker_opens_at_the_rate_and_lets_trials_through_after_open_for(
    store: BreakerStore,
) -> None:
    for failed in (False, True, False):
        assert store.record("s", FAST, failed=failed, trial=False).state.state == CLOSED
    opened = store.record("s", FAST, failed=True, trial=False)  # 2 of 4 failed
    assert (opened.transition, opened.state.state) == (OPEN, OPEN)
    assert "2 of 4 attempts failed" in opened.state.reason
    assert store.admit("s", FAST).result == "wait"
    wait_for(lambda: store.read("s").state == HALF_OPEN, timeout=5, message="half-open")
    assert [store.admit("s", FAST).result for _ in range(3)] == ["trial", "trial", "wait"]
    assert store.record("s", FAST, failed=False, trial=True).state.state == HALF_OPEN
    closed = store.record("s", FAST, failed=False, trial=True)
    assert (closed.transition, closed.state.state) == (CLOSED, CLOSED)
    assert closed.state.transitions == {OPEN: 1, HALF_OPEN: 1, CLOSED: 1}
    assert store.known() == ["s"]


def test_a_failed_trial_opens_it_again_for_longer(store: BreakerStore) -> None:
    for _ in range(4):
        store.record("s", FAST, failed=True, trial=False)
    first = store.read("s")
    wait_for(lambda: store.read("s").state == HALF_OPEN, timeout=5, message="half-open")
    assert store.admit("s", FAST).result == "trial"
    again = store.record("s", FAST, failed=True, trial=True).state
    assert (again.state, again.reopens, again.opened_at) == (OPEN, 1, first.opened_at)
    assert again.until is not None and again.changed_at is not None
    assert again.until - again.changed_at == pytest.approx(0.6, abs=0.01)


def test_too_few_attempts_or_a_low_rate_keep_it_closed(store: BreakerStore) -> None:
    for _ in range(3):
        assert store.record("few", FAST, failed=True, trial=False).state.state == CLOSED
    for failed in (True, False, False, False, False, True):
        assert store.record("low", FAST, failed=failed, trial=False).state.state == CLOSED


def test_operators_force_it_open_until_they_close_it(store: BreakerStore) -> None:
    forced = store.force("s", "open").state
    assert (forced.state, forced.forced, forced.until) == (OPEN, True, None)
    assert store.admit("s", FAST).result == "wait"
    closed = store.force("s", "close")
    assert (closed.transition, closed.state.state, closed.state.forced) == (CLOSED, CLOSED, False)
    assert store.admit("s", FAST).result == "run"
    with pytest.raises(ValueError):
        store.force("s", "ajar")


def test_a_trial_without_an_outcome_gives_its_slot_back(store: BreakerStore) -> None:
    store.force("s", "open")
    store.force("s", "close")
    for _ in range(4):
        store.record("s", FAST, failed=True, trial=False)
    wait_for(lambda: store.read("s").state == HALF_OPEN, timeout=5, message="half-open")
    assert [store.admit("s", FAST).result for _ in range(2)] == ["trial", "trial"]
    store.release("s")
    assert store.admit("s", FAST).result == "trial"


def test_breakers_read_together_in_one_round_trip(store: BreakerStore) -> None:
    store.force("b", "open")
    states = store.read_many(["a", "b"])
    assert {n: s.state for n, s in states.items()} == {"a": CLOSED, "b": OPEN}
    assert states["b"].as_dict()["forced"] is True


def test_the_celery_and_kombu_members_the_workers_use_exist() -> None:
    """Public members, but the pause depends on them: name them if a release drops one."""
    import celery
    from celery.worker.consumer.consumer import Consumer
    from kombu import Consumer as KombuConsumer
    from kombu.asynchronous.timer import Timer

    used = [(Consumer, "cancel_task_queue"), (Consumer, "add_task_queue"),
            (KombuConsumer, "consuming_from"), (Timer, "call_repeatedly")]  # fmt: skip
    for owner, member in used:
        assert callable(getattr(owner, member, None)), (
            f"{owner.__module__}.{owner.__name__}.{member} is gone in Celery {celery.__version__}"
        )


class Request:
    retries = 0


class Guarded:
    wowevent_subscriber = "s"
    request = Request()
    autoretry_for = (RuntimeError,)
    dont_autoretry_for = ()

    def __init__(self) -> None:
        from wowevent_kombu.core.breaker import TASK_FLAG

        setattr(self, TASK_FLAG, FAST)


def test_without_redis_the_breaker_stays_out_of_the_way() -> None:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.breaker import BreakerMiddleware

    down = redis.Redis(port=1, socket_connect_timeout=0.2, retry=None)
    middleware = BreakerMiddleware(lambda: BreakerStore(down, "x"))
    event = Event(type="a.b")
    middleware.before_handle(Guarded(), event)  # runs
    middleware.after_handle(Guarded(), event, result=None, exc=RuntimeError("x"))  # not raised


def test_held_back_deliveries_are_requeued_and_failures_that_open_it_too(
    store: BreakerStore,
) -> None:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.breaker import BreakerMiddleware

    middleware = BreakerMiddleware(lambda: store, pause=0)
    task, event = Guarded(), Event(type="a.b")
    for _ in range(3):
        middleware.before_handle(task, event)
        middleware.after_handle(task, event, result=None, exc=RuntimeError("down"))
    middleware.before_handle(task, event)
    with pytest.raises(BreakerOpen) as opened:  # the 4th failure opens it: requeue, no retry
        middleware.after_handle(task, event, result=None, exc=RuntimeError("down"))
    assert opened.value.requeue is True
    with pytest.raises(BreakerOpen):
        middleware.before_handle(task, event)
    middleware.after_handle(task, event, result=None, exc=ValueError("not counted"))
