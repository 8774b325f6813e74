"""The scripts' sandbox: bwrap command lines, mounts per kind of script, network, helpers, checks."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.pipeline import script_packages, scripts
from imagebuild.pipeline.script_env import ScriptKind
from imagebuild.tools.run import CommandError
from imagebuild.tools.sandbox import Mount, sandbox_argv

BASE = textwrap.dedent("""
    [Distribution]
    Distribution=debian
    Release=trixie
    Architecture=x86-64
""")


def load_config(directory: Path, extra: str = "") -> Config:
    directory.mkdir(exist_ok=True)
    (directory / "mkosi.conf").write_text(BASE + extra)
    _, images = load(["-C", str(directory), "summary"])
    return images[0]


def pairs(argv: list[str], option: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == option]


def test_host_is_read_only_and_mounts_follow_in_order(tmp_path: Path) -> None:
    argv = sandbox_argv(["/work/x", "a"], mounts=[Mount(Path("/ws"), Path("/ws")),
                                                  Mount(Path("/s"), Path("/work/x"), read_only=True)],
                        host_work=tmp_path / "none")
    assert argv[0].endswith("bwrap")
    assert argv.index("--ro-bind") < argv.index("--bind")
    assert pairs(argv, "--ro-bind")[0] == ("/", "/")
    assert ("/ws", "/ws") in pairs(argv, "--bind")
    assert ("/s", "/work/x") in pairs(argv, "--ro-bind")
    assert "--unshare-net" in argv
    assert argv[argv.index("--cap-add") + 1] == "ALL"
    assert argv[-3:] == ["--", "/work/x", "a"]
    # /tmp and /work are fresh tmpfs before any mount goes there.
    assert argv.index("/tmp") < argv.index("--bind")
    assert argv[argv.index("/tmp") - 3:argv.index("/tmp")] == ["--perms", "1777", "--tmpfs"]


def test_network_and_environment(tmp_path: Path) -> None:
    argv = sandbox_argv(["true"], env={"B": "2", "A": "1"}, network=True, cwd=Path("/work/src"),
                        host_work=tmp_path / "none")
    assert "--unshare-net" not in argv
    assert "--clearenv" in argv
    assert pairs(argv, "--setenv") == [("A", "1"), ("B", "2")]
    assert argv[argv.index("--chdir") + 1] == "/work/src"


def test_host_work_entries_and_hidden_runtime_paths_stay_visible(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "shared").mkdir()
    argv = sandbox_argv(["true"], host_work=tmp_path, keep_visible=[Path("/tmp/venv"), Path("/usr")])
    ro = pairs(argv, "--ro-bind")
    assert (str(tmp_path / "main"), str(tmp_path / "main")) in ro
    assert (str(tmp_path / "shared"), str(tmp_path / "shared")) in ro
    assert ("/tmp/venv", "/tmp/venv") in ro
    # /usr is visible anyway through the read-only host.
    assert ("/usr", "/usr") not in ro


def make_context(tmp_path: Path, extra: str = "") -> Context:
    config = load_config(tmp_path / "project", extra)
    workspace = tmp_path / "ws"
    (workspace / "root").mkdir(parents=True)
    (workspace / "staging").mkdir()
    return Context(config, workspace, tmp_path / "cache")


@pytest.mark.parametrize("kind", list(ScriptKind))
def test_mounts_per_kind(tmp_path: Path, kind: ScriptKind) -> None:
    context = make_context(tmp_path, "[Output]\nBuildDirectory=" + str(tmp_path / "bd") + "\n")
    script = tmp_path / "project" / "mkosi.x"
    mounts = scripts.script_mounts(context, kind, script, [], tmp_path / "c.json")
    targets = {str(m.target): m for m in mounts}
    assert targets[str(context.workspace)].read_only is False
    assert targets[kind.mount_point.as_posix()].source == script
    assert targets[kind.mount_point.as_posix()].read_only
    assert targets["/work/config.json"].read_only
    assert ("/work/dest" in targets) == (kind is ScriptKind.build)
    assert ("/work/build" in targets) == (kind is ScriptKind.build)
    assert ("/work/packages" in targets) == (kind is ScriptKind.build)
    assert ("/work/out" in targets) == (kind is not ScriptKind.prepare)


def test_network_per_kind(tmp_path: Path) -> None:
    off = load_config(tmp_path / "a")
    on = load_config(tmp_path / "b", "[Content]\nWithNetwork=yes\n")
    assert scripts.script_network(off, ScriptKind.prepare)
    assert not scripts.script_network(off, ScriptKind.build)
    assert not scripts.script_network(off, ScriptKind.finalize)
    assert scripts.script_network(on, ScriptKind.build)


def test_build_sources_sorted_below_work_src(tmp_path: Path) -> None:
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    context = make_context(tmp_path, f"[Content]\nBuildSources={tmp_path}/b:x/y,{tmp_path}/a:x,{tmp_path}/c\n")
    with scripts.build_sources(context) as mounts:
        assert [(m.source.name, str(m.target)) for m in mounts] == [
            ("c", "/work/src"), ("a", "/work/src/x"), ("b", "/work/src/x/y")]


def test_default_build_source_is_the_config_directory(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    with scripts.build_sources(context) as mounts:
        assert [(m.source, str(m.target)) for m in mounts] == [(tmp_path / "project", "/work/src")]


def test_chroot_scripts_run_through_mkosi_chroot() -> None:
    helpers = Path("/h")
    assert scripts._script_command(ScriptKind.postinst, Path("/p/mkosi.postinst.chroot"), ["final"], helpers) == [
        "/h/mkosi-chroot", "/work/postinst", "final"]
    assert scripts._script_command(ScriptKind.build, Path("/p/mkosi.build"), ["x"], helpers) == [
        "/work/build-script", "x"]


def test_non_executable_script_found_by_convention_is_an_error(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "mkosi.finalize").write_text("#!/bin/sh\n")
    (project / "mkosi.finalize").chmod(0o644)
    config = load_config(project)
    with pytest.raises(BuildError, match=r"FinalizeScripts=.*mkosi\.finalize: the script is not executable"):
        scripts.check_scripts(config)
    (project / "mkosi.finalize").chmod(0o755)
    scripts.check_scripts(config)


def test_failed_script_names_itself_and_opens_the_debug_shell(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    context = make_context(tmp_path)
    context.debug_shell = True
    script = tmp_path / "project" / "mkosi.build"
    calls: list[list[str]] = []

    def failing_run(argv: list[str], *, what: str | None = None, **kw: object) -> str:
        raise CommandError(f"{what} failed with exit status 3; its last output:\n    boom", output="boom")

    monkeypatch.setattr(scripts, "run", failing_run)
    monkeypatch.setattr("subprocess.run", lambda argv, check: calls.append(argv))
    with pytest.raises(BuildError, match=r"the build script .*mkosi\.build failed with exit status 3"):
        scripts.run_script(context, ScriptKind.build, script, [], buildroot=context.root, sources=[])
    assert len(calls) == 1
    assert calls[0][-2:] == [str(context.workspace / "script-helpers" / "mkosi-chroot"), "/bin/sh"]


def test_helpers_are_executable_copies(tmp_path: Path) -> None:
    helpers = scripts._helpers_dir(make_context(tmp_path))
    names = {p.name for p in helpers.iterdir()}
    assert {"mkosi-chroot", "mkosi-install", "mkosi-reinstall", "mkosi-upgrade", "mkosi-remove",
            "mkosi-as-caller", "git", "useradd", "groupadd", "apt", "apt-get", "dpkg"} <= names
    assert all(os.access(p, os.X_OK) for p in helpers.iterdir())


class FakeDistribution:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], Path | None]] = []

    def install_packages(self, context: Context, packages: list[str], *, root: Path | None = None) -> None:
        self.calls.append(("install", packages, root))

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        self.calls.append(("remove", packages, None))


def test_mkosi_install_and_remove_ask_imagebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = make_context(tmp_path)
    fake = FakeDistribution()
    monkeypatch.setattr("imagebuild.distributions.distribution_for", lambda config: fake)
    merged = tmp_path / "merged"
    with script_packages.serving(context, merged) as socket:
        monkeypatch.setenv(script_packages.SOCKET_VARIABLE, str(socket))
        assert script_packages.main(["install", "make", "file"]) == 0
        # Removing from under the build overlay is refused.
        assert script_packages.main(["remove", "make"]) == 1
    assert fake.calls == [("install", ["make", "file"], merged)]
    assert not socket.exists()
    with script_packages.serving(context, context.root):
        assert script_packages.main(["remove", "make"]) == 0
    assert fake.calls[-1] == ("remove", ["make"], None)
    assert script_packages.main(["install"]) == 2
    # Outside a script run there is nobody to ask.
    assert script_packages.main(["install", "x"]) == 1


def test_reinstall_is_refused_where_there_is_no_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTRIBUTION", "fedora")
    assert script_packages.main(["reinstall", "x"]) == 1
