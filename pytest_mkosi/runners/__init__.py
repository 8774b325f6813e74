"""Machine runners: start a built image, know when it is ready, run commands in it, stop it."""
