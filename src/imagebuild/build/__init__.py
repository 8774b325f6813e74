"""The build pipeline: one small module per stage, run in mkosi's documented order."""

from imagebuild.build.pipeline import build_image

__all__ = ["build_image"]
