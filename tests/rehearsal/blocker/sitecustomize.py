"""Loaded at interpreter start (PYTHONPATH): modules the rehearsed image lacks cannot be imported.

`REHEARSAL_IMAGE_BLOCKED` lists top-level module names (see tests/rehearsal/image_contents.py);
importing one fails exactly as in the image: ModuleNotFoundError.
"""

import os
import sys
from importlib.abc import MetaPathFinder

_BLOCKED = frozenset(filter(None, os.environ.get("REHEARSAL_IMAGE_BLOCKED", "").split(",")))


class _NotInImage(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not in this image)")
        return None


if _BLOCKED:
    sys.meta_path.insert(0, _NotInImage())
