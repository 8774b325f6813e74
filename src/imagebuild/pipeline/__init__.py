"""The build pipeline: one small module per stage, run in mkosi's documented order."""

from imagebuild.pipeline.pipeline import build_image

__all__ = ["build_image"]
