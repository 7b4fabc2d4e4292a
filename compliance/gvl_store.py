"""The Global Vendor List in force: loading it (a file path, or a URL on the beat), keeping
the last good version, and turning it into each buyer's declarations for the snapshot.

`GVL_PATH` is a vendor-list.json on disk, read when no version has been stored yet (a fresh
install, the tests). `refresh_gvl` reads `GVL_URL` (or a path), checks it with
`compliance.gvl.parse_gvl` and stores it as a `VendorList` when its version is newer than the
newest stored; a list that fails to load changes nothing. The newest stored version wins over
the file.
"""

import json
import logging
from datetime import datetime
from pathlib import Path

import httpx
from django.conf import settings

from adsplatform.sources import read_bounded
from compliance.gvl import GlobalVendorList, GvlError, parse_gvl
from compliance.models import VendorList

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 30.0
# The real list is a few megabytes; anything much larger is not one.
MAX_GVL_BYTES = 32 << 20
# Versions kept besides the newest (for the admin's history; serving uses the newest only).
KEEP_VERSIONS = 5

# Parsing a real list takes tens of milliseconds and a snapshot is built every minute: keep
# the parsed list per stored version (or file modification) in the process.
_parsed: dict[tuple[str, object], GlobalVendorList] = {}


def _read(source: str) -> bytes:
    return read_bounded(source, limit=MAX_GVL_BYTES, timeout=FETCH_TIMEOUT, error=GvlError)


def _decode(data: bytes, source: str) -> tuple[object, GlobalVendorList]:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GvlError(f"{source} is not JSON: {error}") from None
    return raw, parse_gvl(raw)


def refresh_gvl(source: str | None = None) -> VendorList | None:
    """Load the list once; the new `VendorList`, or None when it is not newer than the
    newest stored. Raises GvlError or OSError (nothing changes) when it cannot be used."""
    source = source if source is not None else (settings.GVL_URL or settings.GVL_PATH)
    if not source:
        raise GvlError("neither GVL_URL nor GVL_PATH is set")
    try:
        data = _read(source)
    except httpx.HTTPError as error:
        raise GvlError(f"{source}: {error}") from error
    raw, gvl = _decode(data, source)
    newest = VendorList.objects.newest()
    if newest is not None and newest.version >= gvl.vendor_list_version:
        return None
    stored = VendorList.objects.create(
        version=gvl.vendor_list_version,
        tcf_policy_version=gvl.tcf_policy_version,
        last_updated=gvl.last_updated,
        vendor_count=len(gvl.vendors),
        source=source,
        data=raw,
    )
    old = VendorList.objects.order_by("-version").values_list("pk", flat=True)[KEEP_VERSIONS:]
    VendorList.objects.filter(pk__in=list(old)).delete()
    return stored


def current_gvl() -> GlobalVendorList | None:
    """The newest stored version, else GVL_PATH, else None (no GVL: TC string only)."""
    stored = VendorList.objects.only("pk", "version").order_by("-version").first()
    if stored is not None:
        key: tuple[str, object] = ("db", stored.pk)
        if key not in _parsed:
            data = VendorList.objects.values_list("data", flat=True).get(pk=stored.pk)
            _parsed.clear()
            _parsed[key] = parse_gvl(data)
        return _parsed[key]
    if not settings.GVL_PATH:
        return None
    path = Path(settings.GVL_PATH)
    try:
        stat = path.stat()
        key = ("file", (str(path), stat.st_mtime_ns, stat.st_size))
        if key not in _parsed:
            _, gvl = _decode(_read(str(path)), str(path))
            _parsed.clear()
            _parsed[key] = gvl
        return _parsed[key]
    except (OSError, GvlError) as error:
        log.error("GVL_PATH %s cannot be used, buyers are judged without a GVL: %s", path, error)
        return None


def gvl_version_in_force() -> int | None:
    gvl = current_gvl()
    return gvl.vendor_list_version if gvl is not None else None


def vendor_summary(gvl: GlobalVendorList | None, vendor_id: int | None, now: datetime) -> str:
    """A buyer's declarations in words, for the admin."""
    if gvl is None:
        return "No Global Vendor List loaded: judged by the TC string alone."
    if vendor_id is None:
        return f"No GVL vendor id (GVL v{gvl.vendor_list_version}): not called on GDPR traffic."
    vendor = gvl.vendor(vendor_id)
    if vendor is None or vendor.is_deleted(now):
        return f"Vendor {vendor_id} is not in GVL v{gvl.vendor_list_version}: no personal data."

    def ids(values: frozenset[int]) -> str:
        return ", ".join(str(v) for v in sorted(values)) or "none"

    return (
        f"GVL v{gvl.vendor_list_version}, {vendor.name}: consent purposes {ids(vendor.purposes)};"
        f" legitimate-interest purposes {ids(vendor.leg_int_purposes)};"
        f" flexible {ids(vendor.flexible_purposes)};"
        f" special features {ids(vendor.special_features)}"
    )
