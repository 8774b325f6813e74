"""One apt repository (a `deb` line), shared by the apt setup and the local package repository."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AptRepository:
    """One `deb` line: an archive URL, a suite, its components and options such as trusted=yes."""

    url: str
    suite: str
    components: tuple[str, ...]
    options: tuple[str, ...] = ()

    def sources_line(self) -> str:
        options = f"[{' '.join(self.options)}] " if self.options else ""
        return f"deb {options}{self.url} {self.suite} {' '.join(self.components)}".rstrip()

    def with_options(self, *options: str) -> AptRepository:
        return AptRepository(self.url, self.suite, self.components, (*self.options, *options))
