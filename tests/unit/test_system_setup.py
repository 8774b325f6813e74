"""sysusers, tmpfiles, preset-all, depmod and hwdb: which image programs run, how, and when they are skipped."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from imagebuild.pipeline import image_sandbox, system_setup
from imagebuild.tools.run import CommandError, run


def fake_context(tmp_path: Path, programs: Sequence[str] = ()) -> SimpleNamespace:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    # Debian before the /usr merge of bin and sbin: sbin holds real files, bin is a symlink into /usr.
    (root / "bin").symlink_to("usr/bin")
    for name in programs:
        path = root / "usr/bin" / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return SimpleNamespace(root=root, workspace=tmp_path)


class Recorder:
    def __init__(self, error: CommandError | None = None) -> None:
        self.calls: list[list[str]] = []
        self.error = error

    def __call__(self, context: object, argv: Sequence[str], **kwargs: object) -> str:
        self.calls.append(list(argv))
        if self.error is not None:
            raise self.error
        return ""


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(system_setup, "run_in_image", rec)
    return rec


def test_program_lookup_follows_the_images_own_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    real = root / "usr/lib/systemd/systemd-tool"
    real.write_text("")
    real.chmod(0o755)
    # An absolute symlink means the image's /usr/lib/..., never the host's.
    (root / "usr/bin/tool").symlink_to("/usr/lib/systemd/systemd-tool")
    (root / "usr/bin/escape").symlink_to("/../../../../bin/sh")
    assert image_sandbox.image_has_program(root, "tool")
    assert not image_sandbox.image_has_program(root, "escape")  # resolves to <root>/bin/sh, absent
    assert not image_sandbox.image_has_program(root, "sh")
    assert image_sandbox.image_path(root, "usr/bin/tool") == real


def test_sandbox_makes_the_image_root_the_root(tmp_path: Path) -> None:
    argv = image_sandbox.sandbox_command(tmp_path, ["systemctl", "preset-all"], env={"A": "b"},
                                         ro_binds=[(tmp_path / "creds", "/run/creds")])
    assert argv[0].endswith("bwrap")
    assert argv[argv.index("--bind") + 1:argv.index("--bind") + 3] == [str(tmp_path), "/"]
    offline = argv.index("SYSTEMD_OFFLINE")
    assert argv[offline - 1:offline + 2] == ["--setenv", "SYSTEMD_OFFLINE", "1"]
    assert "--clearenv" in argv and "--die-with-parent" in argv
    assert argv[argv.index("--ro-bind") + 1:argv.index("--ro-bind") + 3] == [str(tmp_path / "creds"), "/run/creds"]
    assert argv[-3:] == ["--", "systemctl", "preset-all"]


def test_each_step_runs_the_images_program(tmp_path: Path, recorder: Recorder) -> None:
    context = fake_context(tmp_path, ["systemd-sysusers", "systemd-tmpfiles", "systemctl", "depmod",
                                      "systemd-hwdb"])
    (context.root / "usr/lib/modules/6.1.0-1-amd64/kernel").mkdir(parents=True)
    (context.root / "usr/lib/modules/6.12.0-2-amd64").mkdir(parents=True)
    (context.root / "usr/lib/udev/hwdb.d").mkdir(parents=True)
    for step in (system_setup.run_sysusers, system_setup.run_tmpfiles, system_setup.run_preset_all,
                 system_setup.run_depmod, system_setup.run_hwdb):
        step(context)  # type: ignore[arg-type]
    assert recorder.calls[0] == ["systemd-sysusers"]
    tmpfiles = recorder.calls[1]
    assert tmpfiles[:4] == ["systemd-tmpfiles", "--create", "--remove", "--boot"]
    assert {f"--exclude-prefix={p}" for p in ("/dev", "/proc", "/sys", "/run", "/tmp")} <= set(tmpfiles)
    assert recorder.calls[2:4] == [["systemctl", "preset-all"], ["systemctl", "--global", "preset-all"]]
    assert recorder.calls[4:6] == [["depmod", "--all", "6.1.0-1-amd64"], ["depmod", "--all", "6.12.0-2-amd64"]]
    assert recorder.calls[6] == ["systemd-hwdb", "--usr", "--strict", "update"]


def test_steps_are_skipped_without_their_programs(tmp_path: Path, recorder: Recorder) -> None:
    context = fake_context(tmp_path)
    (context.root / "usr/lib/modules/6.1.0-1-amd64").mkdir(parents=True)
    (context.root / "usr/lib/udev/hwdb.d").mkdir(parents=True)
    for step in (system_setup.run_sysusers, system_setup.run_tmpfiles, system_setup.run_preset_all,
                 system_setup.run_depmod, system_setup.run_hwdb):
        step(context)  # type: ignore[arg-type]
    assert recorder.calls == []


def test_no_kernel_no_depmod(tmp_path: Path, recorder: Recorder) -> None:
    context = fake_context(tmp_path, ["depmod"])
    system_setup.run_depmod(context)  # type: ignore[arg-type]
    assert recorder.calls == []


def command_error(status: int) -> CommandError:
    # A real failed command, so that the message format of tools.run is what is parsed.
    with pytest.raises(CommandError) as info:
        run(["sh", "-c", f"echo 'line 3: unknown specifier'; exit {status}"], what="systemd-tmpfiles")
    return info.value


@pytest.mark.parametrize("status", [65, 73])
def test_tmpfiles_partial_failures_are_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture, status: int) -> None:
    monkeypatch.setattr(system_setup, "run_in_image", Recorder(command_error(status)))
    system_setup.run_tmpfiles(fake_context(tmp_path, ["systemd-tmpfiles"]))  # type: ignore[arg-type]
    assert "unknown specifier" in caplog.text


def test_tmpfiles_other_failures_fail_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system_setup, "run_in_image", Recorder(command_error(1)))
    with pytest.raises(CommandError, match="exit status 1"):
        system_setup.run_tmpfiles(fake_context(tmp_path, ["systemd-tmpfiles"]))  # type: ignore[arg-type]
