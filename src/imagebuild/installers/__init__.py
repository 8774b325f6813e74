"""Package managers: how packages get into an image."""
