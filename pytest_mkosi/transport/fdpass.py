"""ProxyCommand for OpenSSH's ProxyUseFdpass: connect to an AF_UNIX socket and hand the connected fd to ssh.

    ssh -o ProxyUseFdpass=yes -o ProxyCommand='python3 -m pytest_mkosi.transport.fdpass SOCKET' root@machine

Lets a person reach a machine's AF_UNIX SSH socket with plain ssh, without socat or nc on the host.
"""

from __future__ import annotations

import socket
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m pytest_mkosi.transport.fdpass SOCKET", file=sys.stderr)
        return 2
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as target:
        try:
            target.connect(argv[0])
        except OSError as e:
            print(f"cannot connect to {argv[0]}: {e.strerror}", file=sys.stderr)
            return 1
        # With ProxyUseFdpass, ssh reads one fd from our stdout, a socket pair, and talks over it directly.
        with socket.socket(fileno=sys.stdout.fileno()) as channel:
            socket.send_fds(channel, [b"\0"], [target.fileno()])
            channel.detach()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
