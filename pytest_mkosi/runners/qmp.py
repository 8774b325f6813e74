"""qemu's power buttons over QMP (the qemu.qmp package's synchronous client)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol


class QmpError(ConnectionError):
    pass


class Qmp:
    """A QMP connection to one qemu, opened on first use."""

    def __init__(self, socket_path: Path, *, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._monitor: QEMUMonitorProtocol | None = None

    def _connected(self) -> QEMUMonitorProtocol:
        if self._monitor is None:
            monitor = QEMUMonitorProtocol(str(self.socket_path))
            try:
                monitor.connect()
            except (QMPError, OSError) as e:
                monitor.close()
                raise QmpError(f"cannot reach qemu's QMP socket {self.socket_path}: {e}") from None
            monitor.settimeout(self.timeout)
            self._monitor = monitor
        return self._monitor

    def command(self, name: str, **arguments: object) -> object:
        try:
            return self._connected().cmd(name, **arguments)
        except (QMPError, OSError, EOFError, TimeoutError) as e:
            self.close()
            raise QmpError(f"QMP {name} failed: {e}") from None

    def quit(self) -> None:
        """Stop qemu at once; its answer may never come, as it exits."""
        with contextlib.suppress(QmpError):
            self.command("quit")
        self.close()

    def close(self) -> None:
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.close()
            self._monitor = None
