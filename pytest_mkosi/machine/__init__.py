"""The Machine API tests use, the same whatever runs the machine (nspawn, qemu): commands, waits, results."""

from pytest_mkosi.machine.api import Machine
from pytest_mkosi.machine.result import CommandFailed, CommandResult, CommandTimeout, as_command

__all__ = ["CommandFailed", "CommandResult", "CommandTimeout", "Machine", "as_command"]
