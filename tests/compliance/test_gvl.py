import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import compliance
from compliance.gvl import GvlError, load_gvl, parse_gvl

TEST_GVL = Path(compliance.__file__).parent / "data" / "gvl-test.json"
OUR_VENDOR = 9999


def test_loads_the_test_list() -> None:
    gvl = load_gvl(TEST_GVL)

    assert (gvl.vendor_list_version, gvl.tcf_policy_version) == (150, 5)
    assert gvl.gvl_specification_version == 3
    assert gvl.last_updated == datetime(2026, 1, 15, 16, tzinfo=UTC)
    assert sorted(gvl.vendors) == [101, 102, 103, 104, OUR_VENDOR]


def test_looks_up_a_vendors_declarations() -> None:
    ours = load_gvl(TEST_GVL).vendor(OUR_VENDOR)

    assert ours is not None
    assert ours.name == "adsplatform"
    assert (ours.purposes, ours.leg_int_purposes) == ({1, 3, 4}, {2, 7, 10})
    assert ours.flexible_purposes == {2, 7}
    assert (ours.special_purposes, ours.features, ours.special_features) == ({1, 2, 3}, {3}, set())
    assert ours.declares(2) and ours.declares(3) and not ours.declares(5)


def test_unknown_vendors_are_absent() -> None:
    gvl = load_gvl(str(TEST_GVL))

    assert gvl.vendor(4242) is None
    assert 4242 not in gvl
    assert 101 in gvl


def test_deleted_vendors_stay_listed_with_their_date() -> None:
    delta = load_gvl(TEST_GVL).vendor(104)

    assert delta is not None
    assert delta.deleted_date == datetime(2025, 6, 30, tzinfo=UTC)
    assert not delta.is_deleted(datetime(2025, 6, 29, tzinfo=UTC))
    assert delta.is_deleted(datetime(2025, 7, 1, tzinfo=UTC))


def test_the_list_is_read_only() -> None:
    gvl = load_gvl(TEST_GVL)

    with pytest.raises(TypeError):
        gvl.vendors[1] = gvl.vendors[101]  # type: ignore[index]


def vendor(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": 7,
        "name": "Buyer",
        "purposes": [1],
        "legIntPurposes": [2],
        "flexiblePurposes": [2],
        "specialPurposes": [],
        "features": [],
        "specialFeatures": [],
    }
    return {**fields, **overrides}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "the vendor list must be a JSON object"),
        ({"vendorListVersion": 1}, "vendors must be a JSON object"),
        ({"vendors": {}}, "vendorListVersion must be a non-negative integer"),
        ({"vendorListVersion": "1", "vendors": {}}, "vendorListVersion must be"),
        ({"vendorListVersion": 1, "vendors": {"7": vendor(id=8)}}, r"vendors\['7'\].id is 8"),
        ({"vendorListVersion": 1, "vendors": {"7": vendor(name="")}}, "name must be a non-empty"),
        (
            {"vendorListVersion": 1, "vendors": {"7": vendor(purposes="1")}},
            "purposes must be a list",
        ),
        ({"vendorListVersion": 1, "vendors": {"7": vendor(features=[True])}}, r"features\[0\]"),
        ({"vendorListVersion": 1, "vendors": {"7": vendor(purposes=[1, 2])}}, "consent and LI"),
        ({"vendorListVersion": 1, "vendors": {"7": vendor(flexiblePurposes=[3])}}, "undeclared"),
        ({"vendorListVersion": 1, "vendors": {"7": vendor(deletedDate="soon")}}, "ISO 8601"),
        ({"vendorListVersion": 1, "vendors": {"7": vendor(deletedDate="2025-01-01")}}, "time zone"),
    ],
)
def test_malformed_lists_are_rejected_with_the_field(data: object, reason: str) -> None:
    with pytest.raises(GvlError, match=reason):
        parse_gvl(data)


def test_a_file_that_is_not_json_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "vendor-list.json"
    path.write_text('{"vendorListVersion": 1, "vendors": {', encoding="utf-8")

    with pytest.raises(GvlError, match="cannot read the vendor list"):
        load_gvl(path)


def test_a_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(GvlError, match="cannot read the vendor list"):
        load_gvl(tmp_path / "missing.json")


def test_a_minimal_list_loads(tmp_path: Path) -> None:
    path = tmp_path / "vendor-list.json"
    path.write_text(json.dumps({"vendorListVersion": 3, "vendors": {"7": vendor()}}))

    gvl = load_gvl(path)

    assert gvl.tcf_policy_version is None
    assert gvl.vendor(7) is not None
