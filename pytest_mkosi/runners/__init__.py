"""Machine runners: start a built image, know when it is ready, stop it (nspawn; qemu next)."""
