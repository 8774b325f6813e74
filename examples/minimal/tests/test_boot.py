"""Boot-test the minimal example: run with `pytest --mkosi-config=examples/minimal examples/minimal/tests`."""

from pathlib import Path


def test_system_reaches_running(mkosi_machine):
    # `--wait` blocks until boot has finished; "degraded" would mean a unit failed.
    state = mkosi_machine.run("systemctl is-system-running --wait").stdout.strip()
    assert state == "running", mkosi_machine.run("systemctl --failed --no-pager").stdout


def test_no_failed_units(mkosi_machine):
    assert mkosi_machine.succeed("systemctl list-units --failed --no-legend --plain") == ""


def test_hostname(mkosi_machine, mkosi_config):
    assert mkosi_machine.succeed("hostname").strip() == mkosi_config.hostname


def test_extra_tree_file(mkosi_machine, mkosi_config):
    expected = (Path(mkosi_config.directory) / "mkosi.extra/etc/imagebuild-example").read_text()
    assert mkosi_machine.succeed("cat /etc/imagebuild-example") == expected


def test_ssh_handle_is_paramiko_client(mkosi_ssh, mkosi_machine):
    assert mkosi_ssh is mkosi_machine.ssh
    _, stdout, _ = mkosi_ssh.exec_command("id -u")
    assert stdout.read().decode().strip() == "0"


def test_fail_and_exit_status(mkosi_machine):
    result = mkosi_machine.run("echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert "No such file" in mkosi_machine.fail("ls /nonexistent")
