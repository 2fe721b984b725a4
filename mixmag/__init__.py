"""mixmag: find and classify blood cells in images with mixed magnifications."""

import os as _os

# albumentations asks PyPI for a newer release when it is imported, unless told not to; mixmag
# reaches for no network at run time (ultralytics sets the same before its own import)
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
