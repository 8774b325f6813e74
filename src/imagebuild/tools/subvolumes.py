"""btrfs subvolumes for image trees (UseSubvolumes=): create, snapshot, delete, and copy trees with them.

mkosi v22 makes the image root a subvolume when its workspace is on btrfs and copies cached and base trees
that are subvolumes by snapshotting them, which takes no time whatever their size. It runs the btrfs
program for that; the ioctls it wraps are used here directly, so no btrfs-progs are needed on the host.
Deleting works without them as well: rm cannot remove a subvolume with --one-file-system (a subvolume
has a device number of its own), so remove_subvolumes() deletes those below a tree first.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

from imagebuild.config.enums import ConfigFeature
from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.tools.mounts import filesystem_type, mounts_below
from imagebuild.tools.run import run

# linux/btrfs.h: struct btrfs_ioctl_vol_args { __s64 fd; char name[BTRFS_PATH_NAME_MAX + 1]; }
_VOL_ARGS_SIZE = 4096
_NAME_MAX = _VOL_ARGS_SIZE - 8 - 1


def _iow(number: int) -> int:
    return (1 << 30) | (_VOL_ARGS_SIZE << 16) | (0x94 << 8) | number


BTRFS_IOC_SNAP_CREATE = _iow(1)
BTRFS_IOC_SUBVOL_CREATE = _iow(14)
BTRFS_IOC_SNAP_DESTROY = _iow(15)
# The inode number of every subvolume's top directory (BTRFS_FIRST_FREE_OBJECTID).
SUBVOLUME_INODE = 256


def on_btrfs(path: Path) -> bool:
    return filesystem_type(path) == "btrfs"


def is_subvolume(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return path.is_dir() and not path.is_symlink() and st.st_ino == SUBVOLUME_INODE and on_btrfs(path)


def _vol_args(fd: int, name: str) -> bytearray:
    encoded = os.fsencode(name)
    if len(encoded) > _NAME_MAX or b"/" in encoded:
        raise OSError(errno.EINVAL, f"not a subvolume name: {name!r}")
    # A mutable buffer: fcntl.ioctl passes it to the kernel as is (an immutable one is limited to 1 KiB).
    return bytearray(struct.pack("=q", fd) + encoded.ljust(_VOL_ARGS_SIZE - 8, b"\0"))


def _ioctl_on_parent(path: Path, request: int, source_fd: int = 0) -> None:
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(parent, request, _vol_args(source_fd, path.name))
    finally:
        os.close(parent)


def create_subvolume(path: Path) -> None:
    """A new, empty subvolume at path (which must not exist); OSError if the file system has none."""
    _ioctl_on_parent(path, BTRFS_IOC_SUBVOL_CREATE)


def snapshot(source: Path, destination: Path) -> None:
    """A writable snapshot of the subvolume source at destination (which must not exist, same btrfs)."""
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _ioctl_on_parent(destination, BTRFS_IOC_SNAP_CREATE, fd)
    finally:
        os.close(fd)


def delete_subvolume(path: Path) -> None:
    """Delete a subvolume and everything in it at once (as root); OSError if it holds other subvolumes."""
    _ioctl_on_parent(path, BTRFS_IOC_SNAP_DESTROY)


def remove_subvolumes(path: Path) -> None:
    """Delete the subvolumes at or below path (not crossing mount points), deepest first.

    Only directories on another device than their parent can be subvolumes, and only below btrfs; the
    walk does not enter a subvolume once found: deleting it takes its content along.
    """
    if not path.is_dir() or path.is_symlink() or not on_btrfs(path):
        return
    # A subvolume looks like a mount point to os.path.ismount (another device): ask the mount table.
    mounted = {os.fspath(p) for p in mounts_below(path)}
    found: list[Path] = []
    if is_subvolume(path) and os.fspath(path.resolve()) not in mounted:
        found.append(path)
    else:
        _find_subvolumes(path, path.lstat().st_dev, found, mounted)
    for subvolume in found:
        try:
            delete_subvolume(subvolume)
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
            # Holds subvolumes of its own (an image that made some): those first, then it.
            nested: list[Path] = []
            _find_subvolumes(subvolume, subvolume.lstat().st_dev, nested, mounted)
            for inner in nested:
                remove_subvolumes(inner)
            delete_subvolume(subvolume)


def _find_subvolumes(directory: Path, device: int, found: list[Path], mounted: set[str]) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        st = entry.stat(follow_symlinks=False)
        child = Path(entry.path)
        if st.st_dev != device:
            if st.st_ino == SUBVOLUME_INODE and os.fspath(child.resolve()) not in mounted:
                found.append(child)
            continue
        _find_subvolumes(child, device, found, mounted)


def wanted(feature: ConfigFeature, directory: Path) -> bool:
    """Whether trees made in directory are to be subvolumes: UseSubvolumes= is not no and it is on btrfs."""
    return feature != ConfigFeature.disabled and on_btrfs(directory)


def make_tree(path: Path, feature: ConfigFeature) -> bool:
    """An empty directory at path, a subvolume where UseSubvolumes= allows it; True if it is one.

    With UseSubvolumes=yes a file system that cannot make one is an error (config/preflight checks the
    usual causes before the build); with auto it is a plain directory then.
    """
    if wanted(feature, path.parent):
        try:
            create_subvolume(path)
            return True
        except OSError as e:
            if feature == ConfigFeature.enabled:
                raise BuildError(f"UseSubvolumes=yes: cannot create the btrfs subvolume {path}: {e.strerror}; "
                                 "use UseSubvolumes=auto") from None
            logger.debug("no subvolume at %s (%s): a plain directory", path, e.strerror)
    elif feature == ConfigFeature.enabled:
        raise BuildError(f"UseSubvolumes=yes: {path.parent} is not on btrfs; put WorkspaceDirectory= and "
                         "OutputDirectory= on a btrfs file system, or use UseSubvolumes=auto")
    path.mkdir()
    return False


def _is_empty_directory(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def copy_tree(source: Path, destination: Path, feature: ConfigFeature = ConfigFeature.disabled) -> None:
    """Copy the contents of the directory source into destination (cp -a, reflinks where possible).

    With UseSubvolumes= not no, a source that is a subvolume is snapshotted when destination does not
    exist yet or is empty, and a destination that does not exist is made a subvolume on btrfs.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if feature != ConfigFeature.disabled and (not destination.exists() or _is_empty_directory(destination)):
        if is_subvolume(source) and on_btrfs(destination.parent):
            existed = destination.exists()
            if existed:
                _remove_empty(destination)
            try:
                snapshot(source, destination)
                logger.debug("snapshot of %s at %s", source, destination)
                return
            except OSError as e:
                # Another file system (EXDEV) or not allowed: copy instead.
                logger.debug("no snapshot of %s at %s (%s): copying", source, destination, e.strerror)
                if existed:
                    make_tree(destination, ConfigFeature.auto)
        if not destination.exists() and on_btrfs(destination.parent):
            make_tree(destination, ConfigFeature.auto)
    destination.mkdir(parents=True, exist_ok=True)
    run(["cp", "-a", "--reflink=auto", f"{source}/.", os.fspath(destination)], what=f"copying {source}")


def _remove_empty(path: Path) -> None:
    if is_subvolume(path):
        delete_subvolume(path)
    else:
        path.rmdir()
