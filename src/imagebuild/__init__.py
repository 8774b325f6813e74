"""imagebuild: builds OS images from mkosi configuration trees."""

__version__ = "0.1.0"
