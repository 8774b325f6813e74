"""SshConnection.settle: one answered round trip before a voluntary hang-up, bounded by its timeout."""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_mkosi.transport.ssh import SshConnection


class FakeTransport:
    def __init__(self, *, answers: bool, active: bool = True) -> None:
        self.answers, self.active = answers, active
        self.requests: list[tuple[str, bool]] = []
        self.never = threading.Event()

    def is_active(self) -> bool:
        return self.active

    def global_request(self, kind: str, data: Any = None, wait: bool = True) -> None:
        self.requests.append((kind, wait))
        if not self.answers:
            self.never.wait(60)  # a guest that does not answer


class FakeClient:
    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport

    def get_transport(self) -> FakeTransport:
        return self.transport


def test_settle_waits_for_the_answer_of_one_request() -> None:
    transport = FakeTransport(answers=True)
    SshConnection(FakeClient(transport)).settle(timeout=5)  # type: ignore[arg-type]
    # want_reply: the answer comes after everything sshd queued before it.
    assert transport.requests == [("keepalive@openssh.com", True)]


def test_settle_gives_up_after_its_timeout_on_a_guest_that_does_not_answer() -> None:
    transport = FakeTransport(answers=False)
    started = time.monotonic()
    SshConnection(FakeClient(transport)).settle(timeout=0.3)  # type: ignore[arg-type]
    assert 0.3 <= time.monotonic() - started < 5 and transport.requests
    transport.never.set()


def test_settle_on_a_dead_transport_sends_nothing() -> None:
    transport = FakeTransport(answers=True, active=False)
    SshConnection(FakeClient(transport)).settle(timeout=5)  # type: ignore[arg-type]
    assert transport.requests == []
