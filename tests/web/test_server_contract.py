"""The uvicorn members ``wowevent_kombu.web.server`` builds on, named so an upgrade that moves
one fails here, by name, rather than as a hung shutdown or a missing timeout.

The behaviour itself (head timeout, JSON protocol errors, clean SIGTERM) is tested over real
sockets in ``test_hostile_http.py``.
"""

from __future__ import annotations

import inspect

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from wowevent_kombu.web.server import GuardedH11, make_server


@pytest.mark.parametrize(
    "member", ["connection_made", "connection_lost", "on_response_complete", "send_400_response"]
)
def test_the_protocol_hooks_exist_and_are_overridden(member: str) -> None:
    assert callable(getattr(H11Protocol, member))
    assert member in GuardedH11.__dict__


def test_the_protocol_state_the_timer_reads_is_set_by_uvicorn() -> None:
    source = inspect.getsource(H11Protocol)
    for attribute in ("self.cycle", "self.transport", "self.loop", "self.conn"):
        assert attribute in source, attribute
    assert "response_complete" in inspect.getsource(
        __import__("uvicorn.protocols.http.h11_impl", fromlist=["RequestResponseCycle"])
    )


def test_the_server_signal_hooks_exist() -> None:
    server = make_server(lambda scope, receive, send: None)
    assert isinstance(server, uvicorn.Server)
    assert inspect.isgeneratorfunction(inspect.unwrap(uvicorn.Server.capture_signals))
    assert "capture_signals" in type(server).__dict__
    assert callable(server.handle_exit)
    assert server.started is False and server.should_exit is False
    assert server.config.http is GuardedH11
    assert server.config.timeout_graceful_shutdown is not None
