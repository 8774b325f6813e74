"""virtiofs for qemu: a Format=directory tree as the guest's root and RuntimeTrees= as extra mounts.

One virtiofsd per shared directory, each listening on a unix socket that qemu's vhost-user-fs-pci device
connects to (the socket is bound before virtiofsd starts and handed over with --fd, so qemu never races
it). The root is served from a throw-away overlay: an overlayfs (the cached tree below, an upper directory in
the boot's scratch directory above) mounted in a private mount namespace of virtiofsd's, so the guest's
writes land in the scratch directory and the tree is only read; nothing is mounted on the host.
RuntimeTrees= are served as they are (the guest writes into them, as with nspawn's --bind).

virtiofs needs guest memory qemu can share with virtiofsd (memory_args). The guest mounts the root from
root=root rootfstype=virtiofs (the kernel and initramfs-tools' initrd understand it); the other shares
come from an fstab.extra credential (systemd-fstab-generator, systemd 254+).

virtiofsd exits by itself when qemu goes away; it also gets PR_SET_PDEATHSIG (through the tools tree's
bwrap --die-with-parent), and stop() ends it for sure.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from imagebuild.config.values import TreeSpec
from imagebuild.errors import RunError
from imagebuild.launch.lifetime import die_with_parent
from imagebuild.tools.run import tools_tree_wrapper
from imagebuild.tools.virtiofsd import ADVICE

if TYPE_CHECKING:
    from imagebuild.config import Config

ROOT_TAG = "root"
# Where RuntimeTrees= without an absolute target go in the guest (as with mkosi and nspawn).
RUNTIME_TREES_BASE = Path("/root/src")
# A unix socket's path must fit sockaddr_un.
SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class Share:
    """One directory the guest mounts: `tag` is virtiofs's name for it (at most 36 bytes)."""

    tag: str
    source: Path
    # In the guest; None for the root file system.
    mount_point: Path | None = None
    # Serve a throw-away overlay over `source` instead of `source` itself.
    overlay: bool = False


def runtime_tree_shares(trees: Sequence[TreeSpec]) -> list[Share]:
    """RuntimeTrees= (SOURCE[:TARGET]) as shares; relative targets are below /root/src."""
    shares = []
    for index, tree in enumerate(trees):
        mount_point = RUNTIME_TREES_BASE / (tree.target if tree.target is not None else tree.source.name)
        shares.append(Share(f"rt{index}", tree.source.absolute(), mount_point))
    return shares


def plan_shares(config: Config, image: Path, virtiofsd: str | None, *, share_root: bool = True) -> list[Share]:
    """What a boot shares: a directory image's root (served from an overlay) when there is a virtiofsd
    (and `share_root`: the caller has no ext4 of it), and RuntimeTrees=, which need one (a clear error
    otherwise)."""
    shares = runtime_tree_shares(config.runtime_trees)
    if shares and virtiofsd is None:
        raise RunError(f"RuntimeTrees=: {ADVICE}")
    if share_root and str(config.format) == "directory" and virtiofsd is not None:
        shares.insert(0, Share(ROOT_TAG, image.absolute(), overlay=True))
    return shares


def root_share(shares: Sequence[Share]) -> Share | None:
    return next((s for s in shares if s.mount_point is None), None)


def start_daemons(shares: Sequence[Share], daemons: list[Virtiofsd], *, binary: str, tools_tree: Path | None,
                  directory: Path) -> list[str]:
    """Start a virtiofsd per share (each appended to `daemons` as soon as it runs, for the caller to stop)
    and return qemu's arguments for them."""
    args: list[str] = []
    for share in shares:
        daemon = Virtiofsd(share, binary=binary, tools_tree=tools_tree, directory=directory)
        daemon.start()
        daemons.append(daemon)
        args += daemon.qemu_args()
    return args


def memory_args(size: str) -> list[str]:
    """Guest RAM in a memfd qemu shares with virtiofsd; -machine must name it (memory-backend=mem)."""
    return ["-object", f"memory-backend-memfd,id=mem,size={size},share=on"]


def fstab_lines(shares: Sequence[Share]) -> list[str]:
    """fstab entries for the shares other than the root."""
    return [f"{s.tag} {s.mount_point} virtiofs defaults 0 0" for s in shares if s.mount_point is not None]


def spawn(argv: list[str], fd: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start virtiofsd with the listening socket `fd`, in its own process group, dying with its parent."""
    return subprocess.Popen(argv, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=die_with_parent)


class Virtiofsd:
    """One virtiofsd serving one share; files (socket, overlay, log) in `directory`."""

    def __init__(self, share: Share, *, binary: str, tools_tree: Path | None, directory: Path) -> None:
        self.share = share
        self.binary = binary
        self.tools_tree = tools_tree
        self.directory = directory
        self.socket_path = directory / f"vfs-{share.tag}.sock"
        self.log_path = directory / f"virtiofsd-{share.tag}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._listener: socket.socket | None = None
        if len(os.fsencode(self.socket_path)) > SOCKET_PATH_MAX:
            raise RunError(f"virtiofsd's socket path {self.socket_path} is too long for a unix socket; "
                           "use a shorter state or workspace directory")

    # The overlay's directories: upper and work are kept with the boot's files (a machine started again
    # after a crash sees its earlier writes), merged is only a mount point in virtiofsd's namespace.
    @property
    def upper(self) -> Path:
        return self.directory / f"vfs-{self.share.tag}-upper"

    @property
    def work(self) -> Path:
        return self.directory / f"vfs-{self.share.tag}-work"

    @property
    def merged(self) -> Path:
        return self.directory / f"vfs-{self.share.tag}-root"

    @property
    def served(self) -> Path:
        return self.merged if self.share.overlay else self.share.source

    def wrapper(self) -> list[str]:
        """What runs virtiofsd: the tools tree's wrapper (its /usr), and for an overlay share first a private
        mount namespace that mounts the overlay (bookworm's bwrap 0.8 has no --overlay)."""
        argv = tools_tree_wrapper(self.tools_tree) if self.tools_tree is not None else []
        if not self.share.overlay:
            return argv
        dirs = [os.fspath(p) for p in (self.share.source, self.upper, self.work, self.merged)]
        if any(c in d for d in dirs for c in ",:"):
            raise RunError(f"virtiofs: overlayfs cannot take a path with ',' or ':' ({', '.join(dirs)}); "
                           "move the image or the state directory")
        mount = 'mount -t overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" overlay "$4" && shift 4 && exec "$@"'
        return ["unshare", "--mount", "--propagation=private", "--", "sh", "-c", mount, "sh", *dirs, *argv]

    def argv(self, fd: int) -> list[str]:
        return [*self.wrapper(), self.binary, f"--fd={fd}", f"--shared-dir={self.served}",
                # Extended attributes (file capabilities, SELinux labels) as the tree has them.
                "--xattr",
                # qemu does not announce submounts; without this virtiofsd warns at every start.
                "--no-announce-submounts",
                # See PROBED below: chroot needs no user or pid namespace.
                "--sandbox=chroot",
                "--log-level=warn",
                # The root's overlay changes only through this guest: let the guest cache what it looked up
                # for good (under TCG every lookup the 1 s timeouts of cache=auto repeat is slow); shared
                # RuntimeTrees= may change on the host underneath, so they keep the default.
                *(["--cache=always"] if self.share.overlay else [])]

    def qemu_args(self) -> list[str]:
        chardev = f"vfs-{self.share.tag}"
        return ["-chardev", f"socket,id={chardev},path={self.socket_path}",
                "-device", f"vhost-user-fs-pci,queue-size=1024,chardev={chardev},tag={self.share.tag}"]

    def start(self) -> None:
        if not self.share.source.is_dir():
            raise RunError(f"virtiofs: {self.share.source} is not a directory")
        if self.share.overlay:
            for directory in (self.upper, self.work, self.merged):
                directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(os.fspath(self.socket_path))
        self._listener.listen(1)
        fd = self._listener.fileno()
        with open(self.log_path, "ab") as log:
            self.process = spawn(self.argv(fd), fd, log)
        # virtiofsd holds the socket now; ours would keep it open after virtiofsd ended.
        self._listener.close()
        self._listener = None

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 15)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, 9)
                self.process.wait()
        self.socket_path.unlink(missing_ok=True)
