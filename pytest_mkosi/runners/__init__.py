"""Machine runners: start a built image, know when it is ready, stop it; and the choice between them."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import RunError

if TYPE_CHECKING:
    from imagebuild.config import Config
    from pytest_mkosi.machine.runner import Runner

# Formats that boot as a container, and the bootable disk formats that need a virtual machine.
CONTAINER_FORMATS = ("directory",)
VM_FORMATS = ("disk", "uki", "esp")
RUNNER_CLASSES = {
    "nspawn": ("pytest_mkosi.runners.nspawn", "NspawnRunner"),
    "qemu": ("pytest_mkosi.runners.qemu", "QemuRunner"),
}


class RunnerChoiceError(RunError):
    """The requested runner cannot boot this image (a usage error, not a failed boot)."""


def choose_runner(requested: str, config: Config) -> str:
    """'nspawn' or 'qemu' for `config`: auto picks by Format=; an impossible request is an error."""
    image_format = str(config.format)
    if requested == "auto":
        if image_format in CONTAINER_FORMATS:
            return "nspawn"
        if image_format in VM_FORMATS:
            return "qemu"
        raise RunnerChoiceError(f"Format={image_format} images do not boot: a machine needs Format=directory "
                                f"(nspawn) or one of {', '.join(VM_FORMATS)} (qemu)")
    if requested == "nspawn" and image_format not in CONTAINER_FORMATS:
        raise RunnerChoiceError(f"--mkosi-runner=nspawn boots Format=directory images, not Format={image_format}:"
                                " use --mkosi-runner=qemu or auto")
    if requested not in RUNNER_CLASSES:
        raise RunnerChoiceError(f"unknown runner {requested!r}: use auto, nspawn or qemu")
    return requested


def image_format_is_directory(config: Config) -> bool:
    return str(config.format) in CONTAINER_FORMATS


def create_runner(kind: str, config: Config, image: Path, *, name: str) -> Runner:
    """A runner of `kind` for the image (imported only when used)."""
    module_name, class_name = RUNNER_CLASSES[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise RunError(f"the {kind} runner is not available in this version") from None
    extra: dict[str, object] = {}
    if kind == "qemu":
        # qemu, OVMF and swtpm from the tools tree the image was built with (ToolsTree=default: trixie's
        # qemu 10, which multi-threaded TCG needs; it is cached, the build made it already).
        from imagebuild.pipeline.subbuilds import tools_tree_for

        tools_tree = extra["tools_tree"] = tools_tree_for(config)
        if image_format_is_directory(config) and config.runtime_size is None:
            # Booted from an ext4 of the cached tree (made once) rather than over virtiofs: ~10 s faster
            # under TCG. RuntimeSize= wants a file system of its own size: that one is made per boot.
            from pytest_mkosi.root_disks import root_disk

            extra["root_disk"] = root_disk(image, tools_tree=tools_tree)
        else:
            # A signed disk: start from variables with its keys enrolled (made once), not from empty ones
            # that make every boot enroll them and reset (pytest_mkosi.enrolled_vars).
            from pytest_mkosi.enrolled_vars import enrolled_variables

            extra["firmware_variables"] = enrolled_variables(config, image, tools_tree=tools_tree)
    runner: Runner = getattr(module, class_name)(config, image, name=name, **extra)
    return runner
