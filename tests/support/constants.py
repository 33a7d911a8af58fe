"""The facts every test shares: the project root, the test Supplier, the pinned clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUPPLIER_EUI = "90-B3-D5-1F-30-01-00-00"
# Inside the validity of Z1-supplier-ds (2015-10-30 .. 2025-10-29): the published test
# certificates have expired, so the service's clock is pinned for these tests.
PINNED = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
MANUFACTURER_CODE = 0x121D
# the device of the published 6.24.1 response (its Supplier cell names Z1-supplier-ds)
RTDS_DEVICE = "00-DB-12-34-56-78-90-A0"
