"""mkosi-install, mkosi-remove, mkosi-reinstall, mkosi-upgrade: package operations on the image from a script.

The package manager does not run inside the script's sandbox (its cache and the workspace are separate
mounts there, so the cache's hard links would fail): while scripts run, imagebuild listens on a Unix
socket in the workspace, and the helpers on the scripts' PATH (`python -m imagebuild.pipeline.script_packages
OPERATION PACKAGE...`) send it their request. imagebuild installs or removes the packages in the tree the
script works on ($BUILDROOT: the image, or the image with the build overlay while build scripts run).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import ImageBuildError

if TYPE_CHECKING:
    from imagebuild.context import Context

OPERATIONS = ("install", "remove", "reinstall", "upgrade")
SOCKET_VARIABLE = "IMAGEBUILD_PACKAGES_SOCKET"
# Distributions whose images these helpers can reinstall and upgrade in (through the image's apt-get).
APT_DISTRIBUTIONS = {"debian", "ubuntu"}


def perform(context: Context, root: Path, operation: str, packages: list[str]) -> None:
    """Install or remove packages in root with the distribution's package manager."""
    from imagebuild.distributions import distribution_for

    distribution = distribution_for(context.config)
    if operation == "install":
        distribution.install_packages(context, packages, root=root)
    elif operation == "remove":
        if root != context.root:
            raise ImageBuildError("mkosi-remove: packages cannot be removed while the build overlay is mounted "
                                  "(in build scripts); remove them in a post-install script or RemovePackages=")
        distribution.remove_packages(context, packages)
    else:
        raise ImageBuildError(f"mkosi-{operation}: unknown operation")


def socket_path(context: Context) -> Path:
    return context.workspace / "script-packages.sock"


@contextlib.contextmanager
def serving(context: Context, root: Path) -> Iterator[Path]:
    """Answer the helpers' requests for root while the scripts of one stage run; yields the socket path."""
    path = socket_path(context)
    path.unlink(missing_ok=True)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                request = json.loads(self.rfile.readline())
                perform(context, root, str(request["operation"]), [str(p) for p in request["packages"]])
                answer = {"status": 0, "message": ""}
            except ImageBuildError as e:
                answer = {"status": 1, "message": str(e)}
            except (ValueError, KeyError, TypeError) as e:
                answer = {"status": 2, "message": f"bad request: {e}"}
            self.wfile.write(json.dumps(answer).encode() + b"\n")

    server = socketserver.UnixStreamServer(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, name="script-packages", daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)


def request(socket_path: Path, operation: str, packages: list[str]) -> tuple[int, str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(socket_path))
        s.sendall(json.dumps({"operation": operation, "packages": packages}).encode() + b"\n")
        with s.makefile("rb") as answer:
            reply = json.loads(answer.readline())
    return int(reply["status"]), str(reply["message"])


def _apt_get(arguments: list[str]) -> int:
    # The apt-get on PATH is the helper that runs the image's own apt-get inside the image.
    os.execvp("apt-get", ["apt-get", "-y", *arguments])


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in OPERATIONS:
        print(f"usage: mkosi-{{{','.join(OPERATIONS)}}} PACKAGE...", file=sys.stderr)
        return 2
    operation, packages = argv[0], argv[1:]
    if not packages and operation != "upgrade":
        print(f"mkosi-{operation}: name at least one package", file=sys.stderr)
        return 2
    if operation in ("reinstall", "upgrade"):
        distribution = os.environ.get("DISTRIBUTION", "")
        if distribution not in APT_DISTRIBUTIONS:
            print(f"mkosi-{operation}: not supported yet for Distribution={distribution}", file=sys.stderr)
            return 1
        if operation == "reinstall":
            return _apt_get(["install", "--reinstall", *packages])
        return _apt_get(["install", "--only-upgrade", *packages] if packages else ["upgrade"])
    try:
        status, message = request(Path(os.environ[SOCKET_VARIABLE]), operation, packages)
    except (KeyError, OSError, ValueError) as e:
        print(f"mkosi-{operation}: only works inside an imagebuild script ({e})", file=sys.stderr)
        return 1
    if message:
        print(message, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
