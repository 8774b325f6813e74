"""The Machine API tests use, the same whatever runs the machine (nspawn, qemu): commands, waits, results."""

from pytest_mkosi.machine.api import CommandFailed, CommandResult, Machine, as_command

__all__ = ["CommandFailed", "CommandResult", "Machine", "as_command"]
