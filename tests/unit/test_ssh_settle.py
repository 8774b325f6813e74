"""SshConnection.settle: one answered round trip before a voluntary hang-up, bounded by its timeout."""

from __future__ import annotations

import threading
import time
from typing import Any

import paramiko
import pytest

from imagebuild.launch import guest_ssh
from pytest_mkosi.transport import ssh
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
    assert SshConnection(FakeClient(transport)).settle(timeout=5)  # type: ignore[arg-type]
    # want_reply: the answer comes after everything sshd queued before it.
    assert transport.requests == [("keepalive@openssh.com", True)]


def test_settle_gives_up_after_its_timeout_on_a_guest_that_does_not_answer() -> None:
    transport = FakeTransport(answers=False)
    started = time.monotonic()
    assert not SshConnection(FakeClient(transport)).settle(timeout=0.3)  # type: ignore[arg-type]
    assert 0.3 <= time.monotonic() - started < 5 and transport.requests
    transport.never.set()


def test_settle_on_a_dead_transport_sends_nothing() -> None:
    transport = FakeTransport(answers=True, active=False)
    assert not SshConnection(FakeClient(transport)).settle(timeout=5)  # type: ignore[arg-type]
    assert transport.requests == []


def test_every_connection_sends_keepalives_while_the_host_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under TCG a guest's sshd on a virtio-serial port can sleep on a request that has arrived; the next
    # byte wakes it. So the host never stays silent for long.
    transport = FakeTransport(answers=True)
    keepalives: list[int] = []
    transport.set_keepalive = keepalives.append  # type: ignore[attr-defined]

    class Client(FakeClient):
        def __init__(self) -> None:
            super().__init__(transport)

        def get_host_keys(self) -> paramiko.HostKeys:
            return paramiko.HostKeys()

        def set_missing_host_key_policy(self, policy: object) -> None:
            pass

        def connect(self, *args: object, **kwargs: object) -> None:
            pass

    monkeypatch.setattr(ssh.paramiko, "SSHClient", Client)
    SshConnection.connect(lambda: None, timeout=5)  # type: ignore[arg-type, return-value]
    assert keepalives == [ssh.KEEPALIVE_SECONDS] and ssh.KEEPALIVE_SECONDS <= 3


def test_the_guests_serial_sshd_polls_by_itself_and_never_hangs_up_for_it() -> None:
    unit = guest_ssh.ssh_serial_unit(0.3, announce=True)
    assert "-o ClientAliveInterval=3 -o ClientAliveCountMax=0" in unit
