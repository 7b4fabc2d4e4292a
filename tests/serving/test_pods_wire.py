"""Ad pods on the wire: the pod fields decoded from a BidRequest and sent on to buyers, the
duration and per-second floor rules, and the VAST pod document."""

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from lxml import etree

from serving.buyers.pool import BuyerPool
from serving.buyers.requests import imps_in
from serving.context import VideoSpec
from serving.pods.vast import pod_vast
from tests.serving.openrtb_helpers import context_of, error_of, outbound_of

VIDEO_IMP = {"id": "1", "tagid": "pk-1", "video": {"mimes": ["video/mp4"]}}


def _pod_body(video: dict[str, Any], **imp: Any) -> bytes:
    request = {"id": "r", "imp": [{**VIDEO_IMP, **imp, "video": {"mimes": ["video/mp4"], **video}}]}
    return msgspec.json.encode(request)


def test_pod_fields_map_onto_the_video_spec() -> None:
    body = _pod_body(
        {"poddur": 90, "maxseq": 4, "rqddurs": [15, 30, 15], "mincpmpersec": 0.2},
        bidfloorcur="EUR",
    )

    ctx = context_of(body)

    spec = ctx.imps[0].video
    assert spec is not None
    assert (spec.poddur, spec.maxseq, spec.rqddurs) == (90, 4, (15, 30))
    assert spec.mincpmpersec == Decimal("0.22")  # EUR at 1.1, like bidfloor
    assert ctx.pods and ctx.imps[0].is_pod


def test_a_structured_pod_imp_and_a_plain_one() -> None:
    pod = context_of(_pod_body({"podid": "b1", "podseq": 1, "slotinpod": -1}))
    plain = context_of(_pod_body({"maxduration": 30}))

    spec = pod.imps[0].video
    assert spec is not None and (spec.podid, spec.podseq, spec.slotinpod) == ("b1", 1, -1)
    assert pod.pods
    assert not plain.pods and not plain.imps[0].is_pod


@pytest.mark.parametrize(
    ("video", "imp", "path"),
    [
        ({"poddur": 0}, {}, "$.imp[0].video.poddur"),
        ({"poddur": 60, "maxseq": 31}, {}, "$.imp[0].video.maxseq"),
        ({"rqddurs": [0]}, {}, "$.imp[0].video.rqddurs[0]"),
        ({"mincpmpersec": -1}, {}, "$.imp[0].video.mincpmpersec"),
        ({"mincpmpersec": 0.1}, {"bidfloorcur": "XYZ"}, "$.imp[0].bidfloorcur"),
    ],
)
def test_bad_pod_fields_name_their_path(
    video: dict[str, Any], imp: dict[str, Any], path: str
) -> None:
    assert error_of(_pod_body(video, **imp)).path == path


@pytest.mark.parametrize(
    ("spec", "seconds", "fits"),
    [
        (VideoSpec(), 45, True),
        (VideoSpec(minduration=10, maxduration=30), 30, True),
        (VideoSpec(minduration=10, maxduration=30), 31, False),
        (VideoSpec(minduration=10, maxduration=30), 9, False),
        (VideoSpec(rqddurs=(15, 30)), 30, True),
        (VideoSpec(rqddurs=(15, 30)), 20, False),
        # rqddurs replaces the range (OpenRTB: they are mutually exclusive)
        (VideoSpec(rqddurs=(60,), maxduration=30), 60, True),
    ],
)
def test_the_duration_rule(spec: VideoSpec, seconds: int, fits: bool) -> None:
    assert spec.allows_duration(seconds) is fits


@pytest.mark.parametrize(
    ("per_second", "seconds", "floor", "expected"),
    [
        (None, 30, "2", "2"),
        ("0.5", 30, "2", "15.0"),
        ("0.05", 30, "2", "2"),  # never below the imp's own floor
    ],
)
def test_the_per_second_floor(
    per_second: str | None, seconds: int, floor: str, expected: str
) -> None:
    spec = VideoSpec(mincpmpersec=Decimal(per_second) if per_second else None)

    assert spec.floor_for(seconds, Decimal(floor)) == Decimal(expected)


def test_buyers_are_sent_the_pod_and_its_per_second_floor_in_their_currency() -> None:
    ctx = context_of(_pod_body({"poddur": 60, "maxseq": 2, "rqddurs": [30], "mincpmpersec": 0.33}))
    pool = BuyerPool(currency="USD", fx={"EUR": Decimal("1.1")})

    in_euros = imps_in(ctx.imps, pool.rate("EUR"))
    video = outbound_of(ctx)["imp"][0]["video"]

    assert (video["poddur"], video["maxseq"], video["rqddurs"]) == (60, 2, [30])
    assert video["mincpmpersec"] == 0.33
    assert in_euros[0].video is not None
    assert in_euros[0].video.mincpmpersec == Decimal("0.3")  # 0.33 / 1.1, rounded up


OURS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<VAST version="4.2"><Ad id="7" adType="video">'
    "<InLine><Impression><![CDATA[https://ads.test/v1/imp/t?a=1&b=2]]></Impression>"
    "</InLine></Ad></VAST>"
)


def test_the_pod_document_numbers_each_ad_and_keeps_its_urls() -> None:
    theirs = OURS.replace('id="7"', 'id="x"').split("\n", 1)[1]

    xml = pod_vast([OURS, "<html>not vast</html>", "<VAST", theirs])

    root = etree.fromstring(xml)
    assert root.tag == "VAST" and root.get("version") == "4.2"
    assert [(ad.get("id"), ad.get("sequence")) for ad in root] == [("7", "1"), ("x", "2")]
    assert b"<![CDATA[https://ads.test/v1/imp/t?a=1&b=2]]>" in xml


def test_no_entity_of_a_buyer_document_is_expanded() -> None:
    hostile = (
        '<?xml version="1.0"?><!DOCTYPE VAST [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<VAST version="4.2"><Ad id="h"><InLine><AdTitle>&x;</AdTitle></InLine></Ad></VAST>'
    )

    xml = pod_vast([hostile])

    assert b"root:" not in xml
