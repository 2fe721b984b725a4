"""mixmag: find and classify blood cells in images with mixed magnifications."""

__version__ = "0.1.0"
