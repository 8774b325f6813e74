"""Errors that reach the user as one clear message instead of a traceback."""


class ImageBuildError(Exception):
    """Base of every error imagebuild reports to the user.

    The message is the complete text shown to the user: it says what was wrong, where
    (file:line and setting when there is one) and what to do about it.
    """


class BuildError(ImageBuildError):
    """A build step failed (a tool's exit status, a missing package, ...)."""


class RunError(ImageBuildError):
    """Starting, reaching or stopping a machine failed."""
