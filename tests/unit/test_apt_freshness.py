"""The InRelease freshness check that lets a warm build skip apt-get update, against a local HTTP server."""

from __future__ import annotations

import datetime
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.installers import apt_freshness
from imagebuild.installers.apt_repository import AptRepository

SOURCES = "amd64\ndeb http://example/debian trixie main\n"
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def inrelease(valid_until: str = "Tue, 08 Dec 2026 00:00:00 UTC") -> bytes:
    return f"Origin: Debian\nSuite: trixie\nValid-Until: {valid_until}\nSHA256:\n abc 1 main/Packages\n".encode()


class Server:
    def __init__(self) -> None:
        self.body = inrelease()
        self.status = 200
        self.requests: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[Server, str]]:
    state = Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body) if state.status == 200 else 0))
            self.end_headers()
            if state.status == 200:
                self.wfile.write(state.body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}/debian"
    finally:
        httpd.shutdown()
        httpd.server_close()


def lists_for(tmp_path: Path, url: str, body: bytes, sources: str = SOURCES) -> tuple[Path, AptRepository]:
    repository = AptRepository(url, "trixie", ("main",))
    lists = tmp_path / "lists"
    lists.mkdir()
    apt_freshness.inrelease_file(lists, repository).write_bytes(body)
    apt_freshness.write_stamp(lists, sources)
    return lists, repository


def test_apts_file_name_for_an_inrelease(tmp_path: Path) -> None:
    repository = AptRepository("http://deb.debian.org/debian-security/", "trixie-security", ("main",))
    assert apt_freshness.inrelease_file(tmp_path, repository).name == \
        "deb.debian.org_debian-security_dists_trixie-security_InRelease"


def test_the_same_bytes_are_fresh(tmp_path: Path, server: tuple[Server, str]) -> None:
    state, url = server
    lists, repository = lists_for(tmp_path, url, state.body)
    assert apt_freshness.lists_are_fresh([repository], lists, SOURCES, NOW)
    assert state.requests == ["/debian/dists/trixie/InRelease"]


def test_not_modified_is_fresh(tmp_path: Path, server: tuple[Server, str]) -> None:
    state, url = server
    lists, repository = lists_for(tmp_path, url, state.body)
    state.status = 304
    assert apt_freshness.lists_are_fresh([repository], lists, SOURCES, NOW)


def test_a_new_inrelease_is_not_fresh(tmp_path: Path, server: tuple[Server, str]) -> None:
    state, url = server
    lists, repository = lists_for(tmp_path, url, state.body)
    state.body = inrelease("Wed, 09 Dec 2026 00:00:00 UTC")
    assert not apt_freshness.lists_are_fresh([repository], lists, SOURCES, NOW)


@pytest.mark.parametrize("status", [404, 500])
def test_errors_leave_it_to_apt(status: int, tmp_path: Path, server: tuple[Server, str]) -> None:
    state, url = server
    lists, repository = lists_for(tmp_path, url, state.body)
    state.status = status
    assert not apt_freshness.lists_are_fresh([repository], lists, SOURCES, NOW)


def test_an_unreachable_server_leaves_it_to_apt(tmp_path: Path) -> None:
    lists, repository = lists_for(tmp_path, "http://127.0.0.1:9/debian", inrelease())
    assert not apt_freshness.lists_are_fresh([repository], lists, SOURCES, NOW)


def test_near_valid_until_is_not_fresh(tmp_path: Path, server: tuple[Server, str]) -> None:
    state, url = server
    state.body = inrelease("Tue, 01 Dec 2026 00:30:00 UTC")
    lists, repository = lists_for(tmp_path, url, state.body)
    assert not apt_freshness.lists_are_fresh([repository], lists, SOURCES, NOW)
    assert state.requests == []


def test_lists_of_other_sources_are_not_fresh(tmp_path: Path, server: tuple[Server, str]) -> None:
    state, url = server
    lists, repository = lists_for(tmp_path, url, state.body, sources="amd64\ndeb http://other trixie main\n")
    assert not apt_freshness.lists_are_fresh([repository], lists, SOURCES, NOW)


def test_local_and_flat_repositories_are_left_to_apt(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    apt_freshness.write_stamp(lists, SOURCES)
    for repository in (AptRepository("file:///srv/repo", "trixie", ("main",)),
                       AptRepository("http://example/flat", "./", ())):
        assert not apt_freshness.lists_are_fresh([repository], lists, SOURCES, NOW)
