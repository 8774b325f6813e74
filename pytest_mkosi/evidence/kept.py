"""--mkosi-keep-on-failure: a machine left running after the session, and how a person reaches and stops it.

Besides the runner's ssh command, `imagebuild ssh` in the machine's config directory reaches it: the runtime
record of imagebuild.launch.runtime_state is written where that command looks (the output directory of the
configuration as the CLI resolves it, without the plugin's overrides), naming the process that ends with the
machine, so that it goes stale when the machine stops. The printed stop command (machine/state.py) removes it.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from imagebuild.config import load_directory
from imagebuild.errors import ImageBuildError
from imagebuild.launch.runtime_state import write_state
from imagebuild.verbs import main_image
from pytest_mkosi.machine import Machine, state


@dataclass(frozen=True)
class Kept:
    name: str
    state_dir: Path
    console_log: Path
    ssh_command: str
    imagebuild_ssh: str | None  # None: no record could be written (`no_record` says why)
    no_record: str = ""

    def lines(self) -> list[str]:
        """What the session's summary says about it."""
        found = [f"reach it:  {self.ssh_command}"]
        if self.imagebuild_ssh is not None:
            found.append(f"or:        {self.imagebuild_ssh}")
        else:
            found.append(f"imagebuild ssh cannot reach it: {self.no_record}")
        found += [f"its state: {self.state_dir}",
                  f"console:   {self.console_log} (recorded while it runs)",
                  f"stop it:   {shlex.join([sys.executable, '-I', str(state.__file__), 'stop', str(self.state_dir)])}"]
        return found


def keep(machine: Machine, config_directory: Path) -> Kept:
    """Mark the machine kept (its supervisor, reaper and later sweeps leave it running), let go of its SSH
    port, and write the record `imagebuild ssh` reads."""
    runner = machine.runner
    state.keep(runner.state_dir)
    runner.let_go()
    command, why = None, ""
    record = runner.runtime_record()
    if record is None:
        why = f"the {runner.kind} runner keeps no runtime record"
    else:
        try:
            path = write_state(main_image(load_directory(config_directory)), record)
        except (ImageBuildError, OSError) as e:
            why = f"cannot write its runtime record for {config_directory}: {e}"
        else:
            state.note_runtime_record(runner.state_dir, path)
            command = shlex.join([sys.executable, "-m", "imagebuild", "-C", str(config_directory), "ssh"])
    return Kept(machine.name, runner.state_dir, runner.console_log_path, machine.ssh_command(), command, why)
