"""Our VAST output against the official VAST 4.2 XSD, after serving fills in real URLs.

The XSD is not in the repository: VAST_XSD names it (../shared/reference/vast_4.2.xsd by
default). Without it these tests skip, unless REQUIRE_VAST_XSD=1 (CI), where they fail.
"""

import os
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from creatives.snapshot import creative_snap
from creatives.vast import NO_AD, VastSchemaMissing, load_schema, validate_vast, vast_duration
from tests.creatives.helpers import SERVED, served
from tests.factories import (
    make_advertiser,
    make_audio_creative,
    make_vast_wrapper_creative,
    make_video_creative,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def xsd() -> None:
    try:
        load_schema()
    except VastSchemaMissing as exc:
        if os.environ.get("REQUIRE_VAST_XSD") == "1":
            pytest.fail(f"REQUIRE_VAST_XSD=1 but {exc}")
        pytest.skip(f"{exc} Set REQUIRE_VAST_XSD=1 to make this a failure.")


def _served_vast(factory: Any) -> bytes:
    return served(creative_snap(factory(make_advertiser())).markup).encode()


@pytest.mark.usefixtures("xsd")
@pytest.mark.parametrize(
    "factory", [make_video_creative, make_audio_creative, make_vast_wrapper_creative]
)
def test_our_vast_validates_against_the_xsd_after_serving_fills_it_in(factory: Any) -> None:
    xml = _served_vast(factory)

    assert validate_vast(xml) == []


@pytest.mark.usefixtures("xsd")
def test_an_audio_wrapper_validates_too() -> None:
    creative = make_vast_wrapper_creative(make_advertiser(), kind="audio")

    assert validate_vast(served(creative_snap(creative).markup).encode()) == []


@pytest.mark.usefixtures("xsd")
def test_the_no_ad_answer_validates() -> None:
    assert NO_AD == b'<VAST version="4.2"/>'
    assert validate_vast(NO_AD) == []


def test_served_urls_with_ampersands_and_macros_come_out_of_the_xml_intact() -> None:
    root = etree.fromstring(_served_vast(make_video_creative))

    inline = root.find("Ad/InLine")
    assert inline is not None
    assert inline.findtext("Impression") == SERVED["%%IMP_URL%%"]
    assert inline.findtext("Error") == f"{SERVED['%%ERROR_URL%%']}?code=[ERRORCODE]"
    assert inline.findtext("AdServingId") == "req-7f3a-0"
    linear = inline.find("Creatives/Creative/Linear")
    assert linear is not None
    assert linear.findtext("VideoClicks/ClickThrough") == SERVED["%%CLICK_URL%%"]
    events = {t.get("event"): t.text for t in linear.iterfind("TrackingEvents/Tracking")}
    assert events["firstQuartile"] == f"{SERVED['%%EVENT_URL%%']}?e=firstQuartile"
    assert list(events) == [
        "start", "firstQuartile", "midpoint", "thirdQuartile", "complete",
        "mute", "unmute", "pause", "resume", "skip",
    ]  # fmt: skip


@pytest.mark.usefixtures("xsd")
def test_the_validator_reports_what_the_xsd_rejects() -> None:
    xml = _served_vast(make_video_creative).decode()
    # The XSD wants AdServingId before AdTitle (its types are alphabetical sequences).
    title = xml[xml.index("<AdTitle>") : xml.index("</AdTitle>") + len("</AdTitle>")]
    swapped = xml.replace(title, "").replace("<AdServingId>", f"{title}<AdServingId>")
    no_media = xml[: xml.index("<MediaFiles>")] + xml[xml.index("</MediaFiles>") + 13 :]

    assert validate_vast(swapped.encode()) == [
        "line 8: Element 'AdTitle': This element is not expected. Expected is one of "
        "( Impression, Pricing, ViewableImpression, AdServingId )."
    ]
    assert validate_vast(no_media.encode())[0].endswith(
        "Element 'VideoClicks': This element is not expected. Expected is ( MediaFiles )."
    )
    assert validate_vast(b"<VAST version='4.2'><Ad>") == [
        "Premature end of data in tag Ad line 1, line 1, column 25"
    ]


def test_a_missing_xsd_is_named(settings: Any) -> None:
    settings.VAST_XSD = "/nowhere/vast_4.2.xsd"

    with pytest.raises(VastSchemaMissing) as missing:
        validate_vast(NO_AD)

    assert str(missing.value) == (
        "No VAST 4.2 XSD at /nowhere/vast_4.2.xsd: set VAST_XSD to the path of the official "
        "vast_4.2.xsd (it is not shipped with this repository)."
    )


def test_durations_are_hh_mm_ss_mmm() -> None:
    assert vast_duration(Decimal("15")) == "00:00:15.000"
    assert vast_duration(Decimal("3725.5")) == "01:02:05.500"
