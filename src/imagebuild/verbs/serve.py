"""serve: build the image if needed, then serve the output directory over HTTP on port 8081, as mkosi v22 does
(`python3 -m http.server 8081` in the output directory: all addresses, until interrupted).

mkosi v22 has no option for the port or address. So that tests and users with 8081 taken can run it anyway,
IMAGEBUILD_SERVE_PORT and IMAGEBUILD_SERVE_ADDRESS override the two (0 picks a free port; the verb prints the
address it listens on).
"""

from __future__ import annotations

import functools
import os
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.errors import ImageBuildError
from imagebuild.log import logger
from imagebuild.verbs import build_if_needed, main_image

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

DEFAULT_PORT = 8081
PORT_VARIABLE = "IMAGEBUILD_SERVE_PORT"
ADDRESS_VARIABLE = "IMAGEBUILD_SERVE_ADDRESS"


def listen_address() -> tuple[str, int]:
    port_text = os.environ.get(PORT_VARIABLE, str(DEFAULT_PORT))
    try:
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise ImageBuildError(f"{PORT_VARIABLE}={port_text}: not a port number (0-65535)") from None
    return os.environ.get(ADDRESS_VARIABLE, ""), port


def make_server(directory: Path, address: str, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=os.fspath(directory))
    try:
        return ThreadingHTTPServer((address, port), handler)
    except OSError as e:
        raise ImageBuildError(f"serve: cannot listen on {address or '*'}:{port}: {e.strerror}; set "
                              f"{PORT_VARIABLE}= to another port") from None


def run(args: Args, images: list[Config]) -> int:
    build_if_needed(args, images)
    directory = paths.output_directory(main_image(images))
    if not directory.is_dir():
        raise ImageBuildError(f"serve: the output directory {directory} does not exist; build the image first")
    address, port = listen_address()
    server = make_server(directory, address, port)
    host, bound_port = server.server_address[:2]
    logger.info("Serving %s on http://%s:%d/ (Ctrl-C stops)", directory, host or "0.0.0.0", bound_port)
    sys.stderr.flush()
    try:
        # The CLI turns SIGTERM into KeyboardInterrupt too.
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
