"""The one error type the configuration layer lets escape, and the small internal one it is built from."""

from __future__ import annotations

from imagebuild.errors import ImageBuildError


class ConfigError(ImageBuildError):
    """A configuration tree or command line that cannot be resolved.

    str(error) is the complete message for the user: where (file:line), which setting, what was
    wrong and what is accepted.
    """


class ValueProblem(Exception):
    """Raised by value parsers; the caller adds file:line and the setting name to make a ConfigError."""

    def __init__(self, problem: str, accepted: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.accepted = accepted

    def describe(self) -> str:
        return f"{self.problem} (accepted: {self.accepted})" if self.accepted else self.problem
