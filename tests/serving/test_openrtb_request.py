"""OpenRTB bid requests decoded and mapped: imps, media, deals, floors, placement keys, bad
requests."""

from decimal import Decimal
from typing import Any

import pytest

from compliance.policy import PrivacySignals
from serving.context import DealRequest, Imp, VideoSpec
from serving.openrtb import OpenRtbError, decode_bid_request
from tests.serving.openrtb_helpers import BANNER_IMP, context_of, error_of, request_body


def test_minimal_banner_request() -> None:
    ctx = context_of(request_body())

    assert ctx.source == "openrtb"
    assert ctx.request_id == "our-1"
    assert ctx.placement_key == "pk-1"
    assert ctx.imps == [
        Imp(
            id="1",
            sizes=("300x250",),
            formats=frozenset({"banner"}),
            bidfloor=Decimal(0),
            secure=False,
            tagid="pk-1",
        )
    ]
    assert ctx.at == 2
    assert ctx.channel is None
    assert ctx.privacy == PrivacySignals()
    assert ctx.geo.source == ""
    assert ctx.now == 1_700_000_000.0


@pytest.mark.parametrize(
    ("imp", "sizes", "formats"),
    [
        (
            {"banner": {"w": 300, "h": 250, "format": [{"w": 300, "h": 250}, {"w": 728, "h": 90}]}},
            ("300x250", "728x90"),
            {"banner"},
        ),
        ({"banner": {"format": [{"w": 320, "h": 50}, {"w": 0, "h": 50}]}}, ("320x50",), {"banner"}),
        ({"video": {"mimes": ["video/mp4"], "w": 640, "h": 360}}, ("640x360",), {"video"}),
        ({"audio": {"mimes": ["audio/mp4"]}}, (), {"audio"}),
        ({"native": {"request": "{}", "ver": "1.2"}}, (), {"native"}),
        (
            {"banner": {"w": 300, "h": 250}, "video": {"mimes": ["video/mp4"], "w": 640, "h": 480}},
            ("300x250", "640x480"),
            {"banner", "video"},
        ),
    ],
)
def test_imp_shapes(imp: dict[str, Any], sizes: tuple[str, ...], formats: set[str]) -> None:
    ctx = context_of(request_body(imp=[{"id": "1", "tagid": "pk", **imp}]))

    assert ctx.imps[0].sizes == sizes
    assert ctx.imps[0].formats == frozenset(formats)


def test_video_imp_maps_onto_video_spec() -> None:
    video = {
        "mimes": ["video/mp4", "video/webm"],
        "minduration": 5,
        "maxduration": 30,
        "protocols": [7, 8],
        "w": 640,
        "h": 360,
        "linearity": 1,
        "skip": 1,
        "startdelay": 0,
        "plcmt": 1,
    }
    imp = context_of(request_body(imp=[{"id": "v", "tagid": "pk", "video": video}])).imps[0]

    assert imp.video == VideoSpec(
        mimes=("video/mp4", "video/webm"),
        minduration=5,
        maxduration=30,
        protocols=(7, 8),
        w=640,
        h=360,
        linearity=1,
        skip=1,
        startdelay=0,
    )
    assert imp.audio is None


def test_audio_imp_maps_onto_audio_spec() -> None:
    audio = {"mimes": ["audio/mp4"], "minduration": 10, "maxduration": 30, "protocols": [2]}
    imp = context_of(request_body(imp=[{"id": "a", "tagid": "pk", "audio": audio}])).imps[0]

    assert imp.audio == VideoSpec(
        mimes=("audio/mp4",), minduration=10, maxduration=30, protocols=(2,)
    )


@pytest.mark.parametrize(
    ("request_field", "expected"),
    [
        ('{"ver":"1.2","assets":[]}', '{"ver":"1.2","assets":[]}'),
        ({"ver": "1.2", "assets": []}, '{"ver":"1.2","assets":[]}'),
    ],
)
def test_native_request_passes_through_as_a_string(request_field: Any, expected: str) -> None:
    imp = {"id": "n", "tagid": "pk", "native": {"request": request_field}}

    assert context_of(request_body(imp=[imp])).imps[0].native_request == expected


def test_pmp_and_deals() -> None:
    pmp = {
        "private_auction": 1,
        "deals": [
            {"id": "d1", "bidfloor": 2.5, "at": 3, "wseat": ["s1"], "wadomain": ["a.com"]},
            {"id": "d2", "bidfloor": 1, "bidfloorcur": "GBP"},
        ],
    }
    imp = context_of(request_body(imp=[{**BANNER_IMP, "pmp": pmp}])).imps[0]

    assert imp.private_auction is True
    assert imp.deals == (
        DealRequest(id="d1", bidfloor=Decimal("2.5"), at=3, wseat=("s1",), wadomain=("a.com",)),
        DealRequest(id="d2", bidfloor=Decimal("1.25")),
    )


@pytest.mark.parametrize(
    ("floor", "cur", "platform", "expected"),
    [
        (1.5, "USD", "USD", Decimal("1.5")),
        (1.5, "EUR", "USD", Decimal("1.65")),
        (2, "GBP", "USD", Decimal("2.50")),
        (0.1, None, "USD", Decimal("0.1")),  # bidfloorcur defaults to USD
        (3, "EUR", "EUR", Decimal(3)),  # the platform currency needs no rate
        (0, "XYZ", "USD", Decimal(0)),  # no floor: no rate needed
    ],
)
def test_floors_are_converted_into_the_platform_currency(
    floor: float, cur: str | None, platform: str, expected: Decimal
) -> None:
    imp: dict[str, Any] = {**BANNER_IMP, "bidfloor": floor}
    if cur is not None:
        imp["bidfloorcur"] = cur

    assert context_of(request_body(imp=[imp]), currency=platform).imps[0].bidfloor == expected


def test_floor_decimal_is_exact() -> None:
    imp = context_of(request_body(imp=[{**BANNER_IMP, "bidfloor": 0.1}])).imps[0]

    assert imp.bidfloor == Decimal("0.1")


@pytest.mark.parametrize(
    ("imps", "path"),
    [
        (
            [BANNER_IMP, {**BANNER_IMP, "id": "2", "bidfloor": 1, "bidfloorcur": "JPY"}],
            "$.imp[1].bidfloorcur",
        ),
        (
            [{**BANNER_IMP, "pmp": {"deals": [{"id": "d", "bidfloor": 1, "bidfloorcur": "XX"}]}}],
            "$.imp[0].pmp.deals[0].bidfloorcur",
        ),
    ],
)
def test_unknown_floor_currency_names_its_path(imps: list[dict[str, Any]], path: str) -> None:
    error = error_of(request_body(imp=imps))

    assert error.path == path
    assert "Unknown currency" in error.message


def test_a_usd_floor_needs_a_rate_on_a_euro_platform() -> None:
    imp = {**BANNER_IMP, "bidfloor": 1}

    assert error_of(request_body(imp=[imp]), currency="EUR", fx={}).path == "$.imp[0].bidfloorcur"


@pytest.mark.parametrize(
    ("imps", "placement_key", "expected_key", "error_path"),
    [
        ([BANNER_IMP, {**BANNER_IMP, "id": "2"}], None, "pk-1", None),
        ([BANNER_IMP, {"id": "2", "banner": {"w": 1, "h": 1}}], None, "pk-1", None),
        ([BANNER_IMP, {**BANNER_IMP, "id": "2", "tagid": "other"}], None, None, "$.imp[1].tagid"),
        ([{"id": "1", "banner": {}}], "from-url", "from-url", None),
        ([BANNER_IMP], "from-url", None, "$.imp[0].tagid"),
        ([{"id": "1", "banner": {}}], None, None, "$.imp[0].tagid"),
        ([{"id": "1", "tagid": "", "banner": {}}], None, None, "$.imp[0].tagid"),
    ],
)
def test_placement_key(
    imps: list[dict[str, Any]],
    placement_key: str | None,
    expected_key: str | None,
    error_path: str | None,
) -> None:
    body = request_body(imp=imps)
    if error_path:
        assert error_of(body, placement_key=placement_key).path == error_path
    else:
        assert context_of(body, placement_key=placement_key).placement_key == expected_key


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"", "$"),
        (b"{not json", "$"),
        (b'{"id": "x", "imp": [}', "$"),
        (b"[]", "$"),
        (b'{"imp": [{"id": "1", "banner": {}}]}', "$.id"),
        (b'{"id": "", "imp": [{"id": "1", "banner": {}}]}', "$.id"),
        (b'{"id": "x"}', "$.imp"),
        (b'{"id": "x", "imp": []}', "$.imp"),
        (b'{"id": "x", "imp": [{"banner": {}}]}', "$.imp[0].id"),
        (b'{"id": "x", "imp": [{"id": "1"}]}', "$.imp[0]"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}}, {"id": "1", "banner": {}}]}',
            "$.imp[1].id",
        ),
        (b'{"id": 7, "imp": [{"id": "1", "banner": {}}]}', "$.id"),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {"w": "300"}}]}', "$.imp[0].banner.w"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}, "bidfloorcur": 5}]}',
            "$.imp[0].bidfloorcur",
        ),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}, "bidfloor": -1}]}', "$.imp[0].bidfloor"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}, "bidfloor": "NaN"}]}',
            "$.imp[0].bidfloor",
        ),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}, "bidfloor": 1e99}]}', "$.imp[0].bidfloor"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}, "pmp": {"deals": [{"id": "d", '
            b'"bidfloor": -2}]}}]}',
            "$.imp[0].pmp.deals[0].bidfloor",
        ),
        (b'{"id": "x", "imp": [{"id": "1", "native": {}}]}', "$.imp[0].native.request"),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "regs": {"gdpr": 2}}', "$.regs.gdpr"),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "device": {"geo": []}}', "$.device.geo"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "site": {"keywords": 5}}',
            "$.site.keywords",
        ),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "user": {"ext": "x"}}', "$.user.ext"),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "test": 2}', "$.test"),
    ],
)
def test_bad_requests_name_their_path(body: bytes, path: str) -> None:
    with pytest.raises(OpenRtbError) as caught:
        decode_bid_request(body)

    assert caught.value.path == path
    assert str(caught.value).endswith(f"- at `{path}`")


def test_too_many_imps() -> None:
    imps = [{"id": str(n), "banner": {}} for n in range(21)]

    with pytest.raises(OpenRtbError) as caught:
        decode_bid_request(request_body(imp=imps))

    assert caught.value.path == "$.imp"


def test_unknown_fields_are_ignored() -> None:
    body = request_body(
        imp=[{**BANNER_IMP, "rwdd": 1, "metric": [{"type": "viewability"}]}],
        wlang=["en"],
        acat=["IAB1"],
    )

    assert context_of(body).imps[0].id == "1"
