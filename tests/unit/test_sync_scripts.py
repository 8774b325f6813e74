"""SyncScripts=: the command line of a sync script (mounts, user, network, $CACHED) and its place in the build."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.pipeline import incremental, pipeline, script_env, scripts, sync_scripts

BASE = textwrap.dedent("""
    [Distribution]
    Distribution=debian
    Release=trixie
    Architecture=x86-64
    [Content]
    BuildSourcesEphemeral=yes
""")


def load_config(directory: Path, extra: str = "") -> Config:
    directory.mkdir(exist_ok=True)
    (directory / "mkosi.conf").write_text(BASE + extra)
    sync = directory / "mkosi.sync"
    sync.write_text("#!/bin/sh\n")
    sync.chmod(0o755)
    _, images = load(["-C", str(directory), "summary"])
    return images[0]


def context_for(tmp_path: Path, extra: str = "") -> Context:
    config = load_config(tmp_path / "project", extra)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return Context(config, workspace, tmp_path / "cache")


def pairs(argv: list[str], option: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == option]


def setenv(argv: list[str]) -> dict[str, str]:
    return dict(pairs(argv, "--setenv"))


def test_mkosi_sync_is_found_and_checked_before_building(tmp_path: Path) -> None:
    context = context_for(tmp_path)
    assert [Path(p).name for p in context.config.sync_scripts] == ["mkosi.sync"]
    (tmp_path / "project/mkosi.sync").chmod(0o644)
    with pytest.raises(BuildError, match=r"SyncScripts=.*mkosi.sync: the script is not executable"):
        scripts.check_scripts(context.config)


def test_the_sources_are_the_real_ones_and_the_network_is_there(tmp_path: Path) -> None:
    context = context_for(tmp_path)
    script = Path(context.config.sync_scripts[0])
    with scripts.build_sources(context, ephemeral_allowed=False) as sources:
        argv = sync_scripts.sync_argv(context, script, sources, cached=False)
    project = tmp_path / "project"
    # BuildSourcesEphemeral=yes does not apply: the configuration directory itself, writable, at /work/src.
    assert (str(project), "/work/src") in pairs(argv, "--bind")
    assert not (context.workspace / "sources").exists()
    assert (str(script), "/work/sync") in pairs(argv, "--ro-bind")
    assert "--unshare-net" not in argv
    assert argv[argv.index("--chdir") + 1] == "/work/src"
    assert argv[-2:] == ["/work/sync", "final"]
    env = setenv(argv)
    assert env["CACHED"] == "0" and env["SRCDIR"] == "/work/src"
    assert "BUILDROOT" not in env and "SCRIPT" not in env


def test_the_invoking_user_runs_it_with_their_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = context_for(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(script_env, "invoking_ids", lambda: (1234, 2345))
    monkeypatch.setattr(script_env, "invoking_home", lambda uid: home)
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/agent.sock")
    argv = sync_scripts.sync_argv(context, Path(context.config.sync_scripts[0]), [], cached=True)
    assert argv[-5:] == ["--reuid=1234", "--regid=2345", "--clear-groups", "/work/sync", "final"]
    assert argv[-6].endswith("setpriv")
    assert (str(home), str(home)) in pairs(argv, "--bind")
    env = setenv(argv)
    assert (env["MKOSI_UID"], env["MKOSI_GID"], env["HOME"]) == ("1234", "2345", str(home))
    assert env["CACHED"] == "1" and env["SSH_AUTH_SOCK"] == "/run/agent.sock"


def test_cached_says_whether_incrementals_image_is_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = context_for(tmp_path, f"[Output]\nCacheDirectory={tmp_path}/c\n[Host]\nIncremental=yes\n")
    seen: list[bool] = []
    monkeypatch.setattr(sync_scripts, "sync_argv", lambda c, s, src, cached: seen.append(cached) or ["true"])
    monkeypatch.setattr(sync_scripts, "run", lambda argv, what: "")
    sync_scripts.run_sync_scripts(context)
    monkeypatch.setattr(incremental, "usable", lambda config, log=True: True)
    sync_scripts.run_sync_scripts(context)
    assert seen == [False, True]


def test_sync_scripts_run_before_the_caches_are_looked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = context_for(tmp_path)
    order: list[str] = []
    monkeypatch.setattr(pipeline, "SYNC", ("run sync scripts", lambda c: order.append("sync")))
    monkeypatch.setattr(pipeline.incremental, "usable", lambda config: order.append("cache lookup") or False)

    def stop(c: Context) -> None:
        order.append("install")
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_install", stop)
    monkeypatch.setattr(pipeline, "PREPARE_WORKSPACE", [])
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_stages(context)
    assert order == ["sync", "install"]
    # With Incremental= the cache is looked up after the sync: what it changed counts.
    order.clear()
    object.__setattr__(context.config, "incremental", True)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_stages(context)
    assert order == ["sync", "cache lookup", "install"]
