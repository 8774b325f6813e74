"""Reaching a machine's shell: SSH over a byte stream (AF_UNIX, AF_VSOCK, virtio-serial), keys, guest units."""
