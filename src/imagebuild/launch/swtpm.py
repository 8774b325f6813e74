"""QemuSwtpm=: a software TPM 2.0 for one VM. swtpm does not exit when the VM powers off: stop it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from imagebuild.errors import RunError
from imagebuild.launch.lifetime import die_with_parent
from imagebuild.tools.run import find_tool, run, stop_process_group, tools_tree_wrapper

SOCKET_TIMEOUT = 10.0


def reaping_namespace(tools_tree: Path | None) -> list[str]:
    """The argv prefix that runs swtpm_setup in a PID namespace of its own (with the tools tree's /usr when
    there is one), whose init (bwrap) reaps every process that ends in it. swtpm_setup 0.7 waits until the
    swtpm it started is gone, and that swtpm is an orphan by then: where the host's pid 1 is slow to reap
    orphans (seen on this project's machines) the wait lasted its full half second on every boot; in the
    namespace it takes milliseconds."""
    if tools_tree is not None:
        wrapper = tools_tree_wrapper(tools_tree)
        return [wrapper[0], "--unshare-pid", *wrapper[1:]]
    if shutil.which("bwrap") is None:
        return []
    return ["bwrap", "--unshare-pid", "--die-with-parent", "--dev-bind", "/", "/"]


def swtpm_available(tools_tree: Path | None) -> bool:
    try:
        find_tool("swtpm", tools_tree=tools_tree)
        find_tool("swtpm_setup", tools_tree=tools_tree)
    except Exception:
        return False
    return True


class Swtpm:
    """A running swtpm with its state in `directory`; qemu connects to `socket`."""

    def __init__(self, directory: Path, tools_tree: Path | None) -> None:
        self.directory = directory
        self.tools_tree = tools_tree
        self.socket = directory / "swtpm.sock"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        state = self.directory / "state"
        state.mkdir(parents=True, exist_ok=True)
        setup = find_tool("swtpm_setup", package="swtpm-tools", tools_tree=self.tools_tree)
        # --config /dev/null: no local CA, so no /etc/swtpm-localca.conf is needed (the host has none).
        # --not-overwrite: a TPM made for an earlier boot of the same machine keeps its state.
        run([*reaping_namespace(self.tools_tree), setup, "--tpm-state", state, "--tpm2", "--pcr-banks", "sha256",
             "--config", "/dev/null", "--not-overwrite"],
            what="swtpm_setup")
        swtpm = find_tool("swtpm", package="swtpm", tools_tree=self.tools_tree)
        argv = [swtpm, "socket", "--tpm2", "--tpmstate", f"dir={state}",
                "--ctrl", f"type=unixio,path={self.socket}"]
        if self.tools_tree is not None:
            argv = [*tools_tree_wrapper(self.tools_tree), *argv]
        with open(self.directory / "swtpm.log", "w") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            text=True, start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + SOCKET_TIMEOUT
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = (self.directory / "swtpm.log").read_text(errors="replace").strip()
                raise RunError(f"QemuSwtpm=: swtpm did not start: {output[-500:] or 'no output'}")
            time.sleep(0.01)

    def qemu_args(self) -> list[str]:
        return [
            "-chardev", f"socket,id=chrtpm,path={os.fspath(self.socket)}",
            "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
            "-device", "tpm-tis,tpmdev=tpm0",
        ]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process_group(self.process, grace=5.0)
        self.process = None
