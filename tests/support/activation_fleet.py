"""The activation tests' image: CPL entry T-3 of a fleet with other models beside it.

Kept apart from tests.support.fleet's image so the two sets of tests verify different
Manufacturer Images.
"""

from __future__ import annotations

import hashlib

from tests.support import fleet
from tests.support.independent import ota_header

IMAGE = b"activation test firmware " * 40
HEADER = ota_header(len(IMAGE), file_version=0x00000200)
IMAGE_HASH = hashlib.sha256(IMAGE).digest()


def cpl_csv() -> str:
    """T-1 -> T-2 -> T-3 (this image), a GSME root G-1 and an unrelated ESME root X-1."""
    return fleet.cpl_csv(IMAGE_HASH, other_models=True)
