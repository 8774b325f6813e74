"""Command lines that start a built image (nspawn, qemu), shared by the CLI verbs and the pytest runners."""
