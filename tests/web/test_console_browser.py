"""The operator console in a real browser (headless Chromium), against a real worker and Redis.

Each flow is what a person on call does: sign in, find the failed delivery, read its
traceback, retry it, purge what is left, replay to one subscriber, look an event up. Each test
writes a screenshot of its page (to ``docs/console/`` with ``make screenshots``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.web.console_stack import (
    ADMIN_TOKEN,
    READ_TOKEN,
    VIEWPORT,
    Stack,
    browser,
    screenshot,
    stack,
)
from wowevent_kombu.core.errors import UnknownDeadLetterError

__all__ = ["browser", "stack"]  # the module's fixtures

pytestmark = pytest.mark.integration
expect.set_options(timeout=20_000)  # a deadline, not a pause: assertions pass as soon as true


def sign_in(browser: Any, stack: Stack, token: str) -> Any:
    """A fresh browser context signed in with ``token``; its page is on the overview."""
    context = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/console/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console/$"))
    return page


@pytest.fixture
def admin(browser: Any, stack: Stack) -> Iterator[Any]:
    page = sign_in(browser, stack, ADMIN_TOKEN)
    yield page
    page.context.close()


@pytest.fixture
def reader(browser: Any, stack: Stack) -> Iterator[Any]:
    page = sign_in(browser, stack, READ_TOKEN)
    yield page
    page.context.close()


def dead_letter(stack: Stack, order: str, type: str = "order.placed") -> tuple[str, str]:
    """Publish an event that ``fragile`` fails on for good: (event id, dead-letter record id)."""
    stack.failing(True)
    event = stack.bus.publish(type, {"order": order})
    record_id = stack.dead_letter_of(event.id)
    stack.failing(False)
    return event.id, record_id


def test_no_session_shows_nothing_and_a_wrong_token_is_refused(browser: Any, stack: Stack) -> None:
    _, record_id = dead_letter(stack, "SECRET-1")
    context = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    page = context.new_page()

    page.goto(f"/console/dlq/{record_id}")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "SECRET-1" not in page.content()  # the payload, and its traceback, stay hidden
    assert "payment gateway" not in page.content()
    screenshot(page, "login")
    assert page.request.get("/admin/dlq").status == 401

    wrong = ADMIN_TOKEN + "x"
    page.get_by_label("Token").fill(wrong)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("That token is not valid")
    assert wrong not in page.content()

    page.get_by_label("Token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(rf"/console/dlq/{record_id}$"))
    expect(page.get_by_text("payment gateway refused order SECRET-1").first).to_be_visible()
    (cookie,) = [c for c in context.cookies() if c["name"] == "wowevent_session"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert cookie["secure"] is False  # plain http here; https requests get a Secure cookie
    context.close()


def test_a_dead_letter_is_read_and_retried_to_its_own_subscriber_only(
    admin: Any, stack: Stack
) -> None:
    event_id, record_id = dead_letter(stack, "A-17")
    wait_for(lambda: stack.runs("audit", event_id), message="audit to handle the event")

    admin.goto("/console/dlq?subscriber=fragile")
    row = admin.locator(f'tr[data-record="{record_id}"]')
    expect(row).to_contain_text("order.placed")
    expect(row).to_contain_text("ValueError: payment gateway refused order A-17")
    screenshot(admin, "dead-letters")

    row.get_by_role("link", name=record_id).click()
    expect(admin.get_by_role("heading", name=f"Dead letter {record_id}")).to_be_visible()
    traceback = admin.locator("pre.traceback").first
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("ValueError: payment gateway refused order A-17")
    expect(admin.locator("pre.json")).to_contain_text('"order": "A-17"')
    screenshot(admin, "record")

    admin.get_by_role("button", name="Retry to fragile").click()
    expect(admin.get_by_role("status")).to_have_text(f"Retried 1 record: {record_id}.")
    expect(admin.locator(f'tr[data-record="{record_id}"]')).to_have_count(0)

    runs = wait_for(
        lambda: [r for r in stack.runs("fragile", event_id) if r["outcome"] == "ok"],
        message="the retried delivery to succeed",
    )
    assert len(runs) == 1
    assert [r["outcome"] for r in stack.runs("audit", event_id)] == ["ok"]  # not run again

    admin.goto("/console/")
    fragile = admin.locator('tr[data-subscriber="fragile"]')
    expect(fragile).to_contain_text(re.compile(r"[1-9]\d* ok"))  # refreshed until it shows
    expect(admin.locator('tr[data-subscriber="audit"]')).to_contain_text("healthy")
    screenshot(admin, "overview")


def test_a_selection_is_purged_after_a_confirmation_that_counts_it(
    admin: Any, stack: Stack
) -> None:
    records = [dead_letter(stack, f"P-{n}", "order.cancelled")[1] for n in range(2)]

    admin.goto("/console/dlq?type=order.cancelled")
    admin.get_by_label("Select every record on this page").check()
    admin.get_by_role("button", name="Purge selected…").click()
    expect(admin.get_by_role("heading", name="Purge 2 records?")).to_be_visible()
    expect(admin.get_by_role("alert")).to_contain_text("2 dead-letter records will be deleted")
    admin.get_by_role("button", name="Yes, purge 2 records").click()

    expect(admin.get_by_role("status")).to_contain_text("Purged 2 records: ")
    expect(admin.locator("#records tbody")).to_contain_text("No dead letter matches.")
    for record_id in records:
        with pytest.raises(UnknownDeadLetterError):
            stack.bus.dead_letters.get(record_id)


def test_a_replay_from_the_console_reaches_only_the_chosen_subscriber(
    admin: Any, stack: Stack
) -> None:
    correlation = f"corr-{uuid.uuid4().hex[:8]}"
    event = stack.bus.publish("order.shipped", {"order": "R-5"}, correlation_id=correlation)
    for name in ("fragile", "audit"):
        wait_for(lambda n=name: stack.runs(n, event.id), message=f"{name} to handle the event")

    admin.goto("/console/log")
    admin.get_by_label("Correlation id").fill(correlation)
    admin.get_by_role("button", name="Find").click()
    row = admin.locator(f'tr[data-event="{event.id}"]')
    expect(row).to_contain_text("order.shipped")
    screenshot(admin, "event-log")
    row.get_by_role("link", name=event.id).click()
    expect(admin.locator("pre.json")).to_contain_text('"order": "R-5"')

    admin.goto("/console/replay")
    admin.get_by_label("audit").check()
    admin.get_by_label("Correlation id").fill(correlation)
    admin.get_by_role("button", name="Preview").click()
    expect(admin.locator("#preview-scanned")).to_have_text("1")
    expect(admin.locator("#preview-types")).to_contain_text("order.shipped")
    expect(admin.locator("#preview-subscribers tbody")).to_have_text(re.compile(r"audit\s*1"))
    screenshot(admin, "replay-preview")

    admin.get_by_role("button", name=re.compile(r"Start replay")).click()
    expect(admin).to_have_url(re.compile(r"/console/replays/[^/]+$"))
    expect(admin.locator("#run-status")).to_have_text("done")
    expect(admin.locator("#run-subscribers tbody")).to_have_text(re.compile(r"audit\s*1"))
    screenshot(admin, "replay-progress")

    replayed = wait_for(
        lambda: [r for r in stack.runs("audit", event.id) if r["replayed"]],
        message="the replayed delivery to audit",
    )
    assert len(replayed) == 1
    assert [r["replayed"] for r in stack.runs("fragile", event.id)] == [False]
    admin.goto("/console/replays")
    expect(admin.locator("#runs tbody")).to_contain_text("audit")


def test_a_read_only_session_can_look_but_not_change(reader: Any, stack: Stack) -> None:
    _, record_id = dead_letter(stack, "RO-1")

    reader.goto("/console/dlq")
    expect(reader.locator(f'tr[data-record="{record_id}"]')).to_be_visible()
    expect(reader.get_by_text("Read-only", exact=True)).to_be_visible()
    expect(reader.get_by_role("button", name=re.compile("Retry|Purge"))).to_have_count(0)
    expect(reader.get_by_role("checkbox")).to_have_count(0)
    reader.goto(f"/console/dlq/{record_id}")
    expect(reader.locator("pre.traceback").first).to_contain_text("refused order RO-1")
    expect(reader.get_by_role("button", name=re.compile("Retry|Purge"))).to_have_count(0)

    forged = [
        ("/console/dlq/retry", {"id": record_id, "csrf": "anything"}),
        ("/console/dlq/confirm", {"action": "purge", "scope": "matching", "csrf": "anything"}),
        ("/console/replay/start", {"subscribers": "audit", "csrf": "anything"}),
    ]
    for path, form in forged:
        answer = reader.request.post(path, form=form, max_redirects=0)
        assert answer.status == 403, (path, answer.status)
        assert "read-only" in answer.text()
    assert stack.bus.dead_letters.get(record_id).id == record_id
    api = reader.request.post(
        f"/admin/dlq/{record_id}/retry", headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    assert api.status == 403


def test_a_wrong_csrf_token_or_a_foreign_origin_is_refused(admin: Any, stack: Stack) -> None:
    _, record_id = dead_letter(stack, "X-1")
    admin.goto("/console/dlq")
    csrf = admin.locator('#selection input[name="csrf"]').get_attribute("value")
    assert csrf

    refused = [
        ({"id": record_id, "csrf": csrf[::-1]}, {}),
        ({"id": record_id}, {}),
        ({"id": record_id, "csrf": csrf}, {"Origin": "http://evil.example"}),
    ]
    for form, headers in refused:
        answer = admin.request.post(
            "/console/dlq/retry", form=form, headers=headers, max_redirects=0
        )
        assert answer.status == 403, (form, headers, answer.status)
    assert stack.bus.dead_letters.get(record_id).id == record_id

    answer = admin.request.post(
        "/console/dlq/retry", form={"id": record_id, "csrf": csrf}, max_redirects=0
    )
    assert answer.status == 303
    with pytest.raises(UnknownDeadLetterError):  # re-driven: gone in the same atomic step
        stack.bus.dead_letters.get(record_id)
