"""A video or audio creative's Open Measurement verifications, passed through into our VAST
as `<AdVerifications>` where VAST 4.1+ puts them, validated on the way in."""

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from lxml import etree

from campaigns.models import Advertiser
from creatives import services
from creatives.forms import CreativeForm
from creatives.models import Creative
from creatives.snapshot import creative_snap
from creatives.vast import validate_vast
from tests.creatives.helpers import field_errors, member_api, served
from tests.creatives.test_vast import xsd
from tests.factories import (
    make_advertiser,
    make_image_creative,
    make_vast_wrapper_creative,
    make_video_creative,
    verify_shop_domain,
)

__all__ = ["xsd"]

pytestmark = pytest.mark.django_db

URL = "/api/v1/creatives/"
OMID = {
    "vendor": "verifier.example-omid",
    "javascript_url": "https://verifier.example/omid.js?c=1&d=2",
    "parameters": '{"campaign": "spring", "html": "<b>&</b>", "cdata": "]]>"}',
}
SECOND = {
    "vendor": "other.example-omid",
    "javascript_url": "https://other.example/v.js",
    "api_framework": "omid",
    "browser_optional": True,
}


@pytest.fixture
def org() -> Advertiser:
    advertiser = make_advertiser("Acme Outdoor")
    verify_shop_domain(advertiser)
    return advertiser


def with_verifications(creative: Any, verifications: list[dict[str, Any]]) -> Any:
    return services.update_creative(creative, ad_verifications=verifications)


def vast_of(creative: Any) -> bytes:
    return served(creative_snap(creative).markup).encode()


def children(element: Any) -> list[str]:
    return [c.tag for c in element if isinstance(c.tag, str)]


@pytest.mark.usefixtures("xsd")
def test_an_inline_carries_the_verifications_and_validates(org: Advertiser) -> None:
    creative = with_verifications(make_video_creative(org), [OMID, SECOND])
    xml = vast_of(creative)

    assert validate_vast(xml) == []
    inline = etree.fromstring(xml).find("Ad/InLine")
    assert children(inline)[4:7] == ["AdTitle", "AdVerifications", "Advertiser"]
    first, second = inline.iterfind("AdVerifications/Verification")
    assert first.get("vendor") == "verifier.example-omid"
    script = first.find("JavaScriptResource")
    assert (script.text, script.get("apiFramework"), script.get("browserOptional")) == (
        "https://verifier.example/omid.js?c=1&d=2", "omid", "false",
    )  # fmt: skip
    assert first.findtext("VerificationParameters") == OMID["parameters"]
    assert second.find("JavaScriptResource").get("browserOptional") == "true"
    assert second.find("VerificationParameters") is None


@pytest.mark.usefixtures("xsd")
def test_a_wrapper_carries_them_before_its_creatives_and_validates(org: Advertiser) -> None:
    creative = with_verifications(make_vast_wrapper_creative(org), [OMID])
    xml = vast_of(creative)

    assert validate_vast(xml) == []
    wrapper = etree.fromstring(xml).find("Ad/Wrapper")
    assert children(wrapper) == [
        "AdSystem", "Error", "Impression", "AdVerifications", "Creatives", "VASTAdTagURI",
    ]  # fmt: skip
    assert (
        wrapper.findtext("AdVerifications/Verification/JavaScriptResource")
        == (OMID["javascript_url"])
    )


def test_a_creative_without_verifications_has_no_element(org: Advertiser) -> None:
    assert b"AdVerifications" not in vast_of(make_video_creative(org))


def test_the_api_sets_and_shows_them_and_sends_the_creative_to_review(org: Advertiser) -> None:
    creative = make_video_creative(org)

    response = member_api(org).patch(
        f"{URL}{creative.pk}/", {"ad_verifications": [OMID]}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["ad_verifications"] == [OMID]
    assert response.json()["status"] == "pending"
    creative.refresh_from_db()
    assert creative.ad_verifications == [OMID]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"vendor": "x"}, "Give a JSON list of verification objects."),
        ([OMID] * 6, "At most 5 verifications; 6 given."),
        (["https://v.example/a.js"], "Verification 1: give an object with vendor and"),
        ([{**OMID, "vendor": "a b"}], "Verification 1: vendor is required"),
        ([{**OMID, "javascript_url": "http://v.example/a.js"}], "must be an https URL"),
        ([{"vendor": "v"}], "Verification 1: javascript_url is required."),
        ([{**OMID, "browser_optional": "yes"}], "browser_optional is true or false."),
        ([{**OMID, "api_framework": "om id"}], "api_framework is up to 30"),
        ([{**OMID, "parameters": "a\x01b"}], "parameters has control characters"),
        ([{**OMID, "script": "x"}], "Verification 1: unknown field 'script'."),
    ],
)
def test_bad_verifications_are_a_400_naming_the_problem(
    org: Advertiser, value: Any, message: str
) -> None:
    creative = make_video_creative(org)

    response = member_api(org).patch(
        f"{URL}{creative.pk}/", {"ad_verifications": value}, format="json"
    )

    errors = field_errors(response)
    assert errors[0][0] == "ad_verifications"
    assert errors[0][1].startswith(message) or message in errors[0][1]


def test_a_display_creative_has_no_verifications(org: Advertiser) -> None:
    with pytest.raises(ValidationError) as raised:
        with_verifications(make_image_creative(org), [OMID])

    assert raised.value.message_dict["ad_verifications"] == [
        "An image creative has no ad_verifications; leave it empty."
    ]


def form_data(creative: Any, verifications: str) -> dict[str, Any]:
    return {
        "name": creative.name, "click_url": creative.click_url, "categories": "[]",
        "duration": str(creative.duration), "ad_verifications": verifications,
    }  # fmt: skip


def test_the_admin_and_console_form_takes_them_as_json(org: Advertiser) -> None:
    creative = make_video_creative(org)

    def form(verifications: str) -> CreativeForm:
        # Each its own copy: validating a ModelForm writes into its instance.
        instance = Creative.objects.get(pk=creative.pk)
        return CreativeForm(form_data(creative, verifications), instance=instance)

    bad, broken, good = form('[{"vendor": "v"}]'), form("[{"), form(json.dumps([OMID]))
    assert (bad.is_valid(), broken.is_valid(), good.is_valid()) == (False, False, True)
    saved = good.save_through_services(by=None)

    assert bad.errors["ad_verifications"] == ["Verification 1: javascript_url is required."]
    assert broken.errors["ad_verifications"] == ["Enter a valid JSON."]
    assert saved.ad_verifications == [OMID]
    assert saved.status == "pending"
