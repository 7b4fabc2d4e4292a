"""Load an IAB Europe Global Vendor List (vendor-list.json, GVL specification v3).

The GVL says, per vendor, which purposes it claims under consent, which under legitimate
interest, which of those are flexible, and which special purposes and features it uses. The
legal-basis check combines this with a decoded TC string; this module only loads the list and
refuses one that is malformed, with the path of the bad field in the message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

__all__ = ["GlobalVendorList", "GvlError", "Vendor", "load_gvl", "parse_gvl"]


class GvlError(ValueError):
    """A vendor list that cannot be used; the message names the bad field."""


@dataclass(frozen=True, slots=True)
class Vendor:
    """One GVL vendor's declarations."""

    id: int
    name: str
    purposes: frozenset[int]
    leg_int_purposes: frozenset[int]
    flexible_purposes: frozenset[int]
    special_purposes: frozenset[int]
    features: frozenset[int]
    special_features: frozenset[int]
    deleted_date: datetime | None = None

    def is_deleted(self, at: datetime) -> bool:
        """The vendor had left the list by `at`."""
        return self.deleted_date is not None and self.deleted_date <= at

    def declares(self, purpose_id: int) -> bool:
        """The vendor claims this purpose under consent or legitimate interest."""
        return purpose_id in self.purposes or purpose_id in self.leg_int_purposes


@dataclass(frozen=True, slots=True)
class GlobalVendorList:
    """A loaded GVL: its versions and its vendors by id."""

    vendor_list_version: int
    tcf_policy_version: int | None
    gvl_specification_version: int | None
    last_updated: datetime | None
    vendors: Mapping[int, Vendor]

    def vendor(self, vendor_id: int) -> Vendor | None:
        """The vendor with this id, or None when the list does not have it."""
        return self.vendors.get(vendor_id)

    def __contains__(self, vendor_id: object) -> bool:
        return vendor_id in self.vendors


def load_gvl(path: Path | str) -> GlobalVendorList:
    """Read and check a vendor-list.json file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GvlError(f"cannot read the vendor list {path}: {error}") from error
    return parse_gvl(data)


def parse_gvl(data: object) -> GlobalVendorList:
    """Check already-parsed vendor-list JSON and turn it into a GlobalVendorList."""
    root = _mapping(data, "the vendor list")
    raw_vendors = _mapping(root.get("vendors"), "vendors")
    vendors: dict[int, Vendor] = {}
    for key, raw in raw_vendors.items():
        vendor = _parse_vendor(key, raw)
        vendors[vendor.id] = vendor
    return GlobalVendorList(
        vendor_list_version=_int(root.get("vendorListVersion"), "vendorListVersion"),
        tcf_policy_version=_optional_int(root.get("tcfPolicyVersion"), "tcfPolicyVersion"),
        gvl_specification_version=_optional_int(
            root.get("gvlSpecificationVersion"), "gvlSpecificationVersion"
        ),
        last_updated=_optional_datetime(root.get("lastUpdated"), "lastUpdated"),
        vendors=MappingProxyType(vendors),
    )


def _parse_vendor(key: str, raw: object) -> Vendor:
    where = f"vendors[{key!r}]"
    fields = _mapping(raw, where)
    vendor_id = _int(fields.get("id"), f"{where}.id")
    if key != str(vendor_id):
        raise GvlError(f"{where}.id is {vendor_id}, not the key it is listed under")
    name = fields.get("name")
    if not isinstance(name, str) or not name:
        raise GvlError(f"{where}.name must be a non-empty string")
    vendor = Vendor(
        id=vendor_id,
        name=name,
        purposes=_ids(fields.get("purposes"), f"{where}.purposes"),
        leg_int_purposes=_ids(fields.get("legIntPurposes"), f"{where}.legIntPurposes"),
        flexible_purposes=_ids(fields.get("flexiblePurposes"), f"{where}.flexiblePurposes"),
        special_purposes=_ids(fields.get("specialPurposes"), f"{where}.specialPurposes"),
        features=_ids(fields.get("features"), f"{where}.features"),
        special_features=_ids(fields.get("specialFeatures", []), f"{where}.specialFeatures"),
        deleted_date=_optional_datetime(fields.get("deletedDate"), f"{where}.deletedDate"),
    )
    # A purpose has one default legal basis, and only a declared purpose can be flexible.
    if both := vendor.purposes & vendor.leg_int_purposes:
        raise GvlError(f"{where} claims purposes {sorted(both)} under consent and LI at once")
    if undeclared := vendor.flexible_purposes - vendor.purposes - vendor.leg_int_purposes:
        raise GvlError(f"{where}.flexiblePurposes has undeclared purposes {sorted(undeclared)}")
    return vendor


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise GvlError(f"{where} must be a JSON object")
    return value


def _int(value: object, where: str) -> int:
    # bool is an int subclass in Python, but true is not a version or an id.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GvlError(f"{where} must be a non-negative integer")
    return value


def _optional_int(value: object, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _ids(value: object, where: str) -> frozenset[int]:
    if not isinstance(value, list):
        raise GvlError(f"{where} must be a list of integer ids")
    return frozenset(_int(item, f"{where}[{index}]") for index, item in enumerate(value))


def _optional_datetime(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise GvlError(f"{where} must be an ISO 8601 date string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise GvlError(f"{where} must be an ISO 8601 date string: {error}") from error
    if parsed.tzinfo is None:
        raise GvlError(f"{where} must carry a time zone (the GVL writes Z)")
    return parsed
