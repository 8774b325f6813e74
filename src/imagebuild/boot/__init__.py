"""The boot chain: kernels, initrds, systemd-boot, unified kernel images, Secure Boot and verity."""
