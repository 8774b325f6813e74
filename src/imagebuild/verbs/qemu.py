"""qemu: boot the image in a virtual machine, its serial console on this terminal (Ctrl-a x quits)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from imagebuild.launch.lifetime import die_with_parent
from imagebuild.launch.qemu import QemuOptions, check_bootable, qemu_machine
from imagebuild.log import logger
from imagebuild.pipeline.subbuilds import tools_tree_for
from imagebuild.verbs import build_if_needed, main_image, need_root

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def split_kernel_argument(cmdline: list[str]) -> tuple[Path | None, list[str]]:
    """`imagebuild qemu -kernel FILE ...`: the kernel to boot, and the other arguments for qemu."""
    kernel: Path | None = None
    rest: list[str] = []
    words = iter(cmdline)
    for word in words:
        if word == "-kernel":
            value = next(words, None)
            if value is not None:
                kernel = Path(value)
                continue
        rest.append(word)
    return kernel, rest


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind normally so that swtpm is stopped and the scratch copies are removed.
    raise SystemExit(128 + signum)


def run(args: Args, images: list[Config]) -> int:
    need_root(args.verb)
    config = main_image(images)
    # Before building: a format qemu cannot boot is refused at once.
    check_bootable(config)
    build_if_needed(args, images)
    tools_tree = tools_tree_for(config)
    kernel, extra = split_kernel_argument(list(args.cmdline))
    options = QemuOptions(extra_args=extra, kernel=kernel)
    # SIGHUP: the terminal went away (pexpect's terminate() sends it first).
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with qemu_machine(config, tools_tree=tools_tree, options=options) as machine:
            logger.info("Booting %s in qemu (%s, firmware %s); Ctrl-a x quits", config.output,
                        machine.accelerator.upper(), machine.firmware)
            logger.debug("+ %s", " ".join(machine.argv))
            sys.stdout.flush()
            sys.stderr.flush()
            process = subprocess.Popen(machine.argv, preexec_fn=die_with_parent)
            try:
                return process.wait()
            finally:
                if process.poll() is None:
                    # bwrap (the tools tree) takes qemu with it when it ends.
                    process.terminate()
                    process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
