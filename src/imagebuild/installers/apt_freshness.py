"""Whether `apt-get update` would change the cached repository lists: one conditional request per InRelease.

apt itself asks with If-Modified-Since and downloads nothing when the InRelease files are unchanged, but
its start-up, signature checks and the package cache it rebuilds from ~60 MB of lists cost 1.5-2 s a
build here. The same question asked in Python costs one round trip per repository, in parallel.

The answer is "fresh" only when it is certain: every repository is a plain http(s) suite whose InRelease
is in the cached lists, the lists were synced for exactly these sources, no InRelease is near its
Valid-Until, and the server answers 304 Not Modified or sends the same bytes. Anything else, including a
network error, means "ask apt".
"""

from __future__ import annotations

import datetime
import email.utils
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.log import logger

if TYPE_CHECKING:
    from imagebuild.installers.apt_repository import AptRepository

# Written into the lists directory after each sync: the sources the lists were fetched for.
SOURCES_STAMP = "imagebuild-sources"
# An InRelease that expires within this margin is refreshed by apt instead.
VALIDITY_MARGIN = datetime.timedelta(hours=1)
REQUEST_TIMEOUT = 5.0


def inrelease_url(repository: AptRepository) -> str | None:
    """The InRelease URL of a repository, None for what this check does not handle (local, flat)."""
    url = repository.url.rstrip("/")
    if not url.startswith(("http://", "https://")) or repository.suite.endswith("/"):
        return None
    return f"{url}/dists/{repository.suite}/InRelease"


def inrelease_file(lists: Path, repository: AptRepository) -> Path:
    """Where apt keeps a repository's InRelease in its lists directory (apt's URItoFileName)."""
    url = repository.url.rstrip("/").split("://", 1)[1]
    url = url.rsplit("@", 1)[-1]  # no user:password@
    return lists / f"{url.replace('/', '_')}_dists_{repository.suite.replace('/', '_')}_InRelease"


def valid_until(text: str) -> datetime.datetime | None:
    for line in text.splitlines():
        if line.startswith("Valid-Until:"):
            try:
                return email.utils.parsedate_to_datetime(line.split(":", 1)[1].strip())
            except (TypeError, ValueError):
                return None
        if not line.strip():
            break  # the end of the Release paragraph
    return None


def unchanged_on_server(url: str, file: Path) -> bool:
    """GET with If-Modified-Since the file's mtime: True for 304, or for a body identical to the file's.

    Mirrors and proxies without conditional requests (this host's answers every request with 200 and no
    Last-Modified) still cost only the InRelease download, which apt would make too.
    """
    request = urllib.request.Request(url, headers={
        "If-Modified-Since": email.utils.formatdate(os.stat(file).st_mtime, usegmt=True),
        "User-Agent": "imagebuild"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as e:
        return e.code == 304
    except (OSError, ValueError):
        return False
    return body == file.read_bytes()


def lists_are_fresh(repositories: Sequence[AptRepository], lists: Path, sources: str,
                    now: datetime.datetime | None = None) -> bool:
    """Whether the lists in `lists`, synced for `sources`, are what apt-get update would fetch now."""
    stamp = lists / SOURCES_STAMP
    if not repositories or not stamp.is_file() or stamp.read_text() != sources:
        return False
    now = now or datetime.datetime.now(datetime.UTC)
    checks: list[tuple[str, Path]] = []
    for repository in repositories:
        url = inrelease_url(repository)
        if url is None:
            return False
        file = inrelease_file(lists, repository)
        try:
            text = file.read_text(errors="replace")
        except OSError:
            return False
        expires = valid_until(text)
        if expires is not None and expires - VALIDITY_MARGIN <= now:
            return False
        checks.append((url, file))
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        answers = list(pool.map(lambda check: unchanged_on_server(*check), checks))
    for (url, _), same in zip(checks, answers, strict=True):
        if not same:
            logger.debug("%s changed (or could not be asked): running apt-get update", url)
    return all(answers)


def write_stamp(lists: Path, sources: str) -> None:
    (lists / SOURCES_STAMP).write_text(sources)
