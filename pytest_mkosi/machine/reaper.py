"""The reaper of one machine state directory (started by machine/state.py; stdlib only, starts fast).

    python -m pytest_mkosi.machine.reaper STATE_DIR PIPE_FD

It blocks reading PIPE_FD, whose other end only the session holds; EOF means the session is gone (it ended,
failed or was killed). Then it stops the processes recorded in STATE_DIR and removes the directory; after a
normal end the session removed it already and there is nothing left to do.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from pytest_mkosi.machine.state import reap


def main(argv: list[str]) -> int:
    directory, fd = Path(argv[0]), int(argv[1])
    # Ctrl-C on the session's terminal is for the session, which cleans up itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.read(fd, 4096):
        pass
    if directory.exists():
        reap(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
