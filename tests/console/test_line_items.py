"""Line items in the console: targeting controls in, the same JSON the API stores out."""

from decimal import Decimal

import pytest

from campaigns import services
from campaigns.console.forms import dayparts_from_cells
from campaigns.models import AuditEntry, LineItem, Role
from tests.console.helpers import member
from tests.factories import make_campaign, make_creative, make_placement

pytestmark = pytest.mark.django_db


def _form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Boots EU", "bid_type": "cpm", "bid": "3.50", "bid_strategy": "fixed",
        "sizes": ["300x250"], "countries": ["DE", "FR"], "regions": ["FR-IDF"],
        "device_types": ["4", "5"], "channels": ["web"], "keywords": "hiking\nboots",
        "negative_keywords": "sale", "segments": "outdoor-fans", "categories": ["IAB17"],
        "other_categories": "IAB20-18", "cap_day": "3", "cap_hour": "1",
        # Monday to Friday, 08:00 to 10:00, in the organisation's time zone.
        "dayparts": [f"{d}:{h}" for d in range(5) for h in (8, 9)],
    }  # fmt: skip
    data.update(overrides)
    return data


def test_a_line_item_is_created_from_the_targeting_controls() -> None:
    campaign = make_campaign(active=False)
    placement = make_placement(sizes=["300x250", "728x90"])
    client = member(campaign.advertiser)

    response = client.post(
        f"/campaigns/{campaign.pk}/line-items/new/?step=2",
        _form(placements=[placement.pk], child_safe="on"),
    )

    li = LineItem.objects.get(name="Boots EU")
    assert response["Location"] == f"/line-items/{li.pk}/creatives/?step=3"
    assert li.countries == ["DE", "FR"] and li.regions == ["FR-IDF"]
    assert li.device_types == [4, 5] and li.channels == ["web"]
    assert li.dayparts == [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "10:00"}]
    assert li.frequency_caps == [{"count": 1, "period": "hour"}, {"count": 3, "period": "day"}]
    assert li.keywords == ["hiking", "boots"] and li.negative_keywords == ["sale"]
    assert li.categories == ["IAB17", "IAB20-18"] and li.child_safe is True
    assert list(li.placements.all()) == [placement]
    assert li.bid == Decimal("3.5")
    assert AuditEntry.objects.for_object(li).get().action == "create"


def test_the_line_item_page_says_the_targeting_in_words() -> None:
    campaign = make_campaign(active=False)
    client = member(campaign.advertiser)
    client.post(f"/campaigns/{campaign.pk}/line-items/new/", _form())
    li = LineItem.objects.get(name="Boots EU")

    page = client.get(f"/line-items/{li.pk}/").content.decode()
    summary = page[
        page.index("data-targeting-summary") : page.index(
            "</ul>", page.index("data-targeting-summary")
        )
    ]

    assert "<li>In Germany, France</li>" in summary
    assert "<li>Only in the regions Île-de-France</li>" in summary
    assert "<li>On phone, tablet</li>" in summary
    assert "<li>Mon, Tue, Wed, Thu, Fri from 08:00 to 10:00 (organisation time)</li>" in summary
    assert "<li>Never next to sale</li>" in summary
    assert "<li>At most 1 per hour, 3 per day to one person</li>" in summary


def test_the_edit_form_shows_what_is_stored_and_saves_changes() -> None:
    campaign = make_campaign(active=False)
    client = member(campaign.advertiser)
    client.post(f"/campaigns/{campaign.pk}/line-items/new/", _form())
    li = LineItem.objects.get(name="Boots EU")

    form = client.get(f"/line-items/{li.pk}/edit/").content.decode()
    saved = client.post(
        f"/line-items/{li.pk}/edit/",
        _form(version=li.version, countries=["DE"], regions=[], dayparts=["5:20", "6:20"]),
    )
    li.refresh_from_db()

    assert '<option value="FR" selected>France</option>' in form
    assert 'value="0:8" aria-label="Mon 08:00 to 09:00" title="Mon 08:00 to 09:00" checked' in form
    assert saved.status_code == 302
    assert li.countries == ["DE"] and li.regions == []
    assert li.dayparts == [{"days": [5, 6], "start": "20:00", "end": "21:00"}]


def test_service_errors_are_shown_next_to_the_field() -> None:
    campaign = make_campaign(active=False)
    client = member(campaign.advertiser)

    response = client.post(
        f"/campaigns/{campaign.pk}/line-items/new/",
        _form(bid_type="cpc", bid_strategy="dynamic_down", sizes=[], other_sizes="12x"),
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert 'data-error-for="click_url">A CPC line item needs a click URL.' in page
    assert 'data-error-for="min_bid">A dynamic strategy needs a minimum bid.' in page
    assert 'data-error-for="sizes">Sizes must look like 300x250; not 12x.' in page
    assert not LineItem.objects.exists()


def test_creatives_are_assigned_with_weights_and_unassigned() -> None:
    campaign = make_campaign(active=False)
    li = services.create_line_item(campaign=campaign, name="L", bid=Decimal("1"), sizes=["300x250"])
    first, second = make_creative(campaign.advertiser), make_creative(campaign.advertiser)
    client = member(campaign.advertiser)

    client.post(
        f"/line-items/{li.pk}/creatives/",
        {f"use-{first.pk}": "on", f"weight-{first.pk}": "3", f"use-{second.pk}": "on"},
    )
    weights = dict(li.assignments.values_list("creative_id", "weight"))
    client.post(
        f"/line-items/{li.pk}/creatives/", {f"use-{second.pk}": "on", f"weight-{second.pk}": "1"}
    )
    bad = client.post(
        f"/line-items/{li.pk}/creatives/",
        {f"use-{first.pk}": "on", f"weight-{first.pk}": "0"},
        follow=True,
    )

    assert weights == {first.pk: 3, second.pk: 1}
    assert list(li.assignments.values_list("creative_id", flat=True)) == [second.pk]
    assert "the weight is a whole number 1 to 100" in bad.content.decode()


def test_analysts_and_other_organisations_cannot_touch_line_items() -> None:
    campaign, other = make_campaign(active=False), make_campaign(active=False)
    li = services.create_line_item(campaign=campaign, name="L", bid=Decimal("1"), sizes=["300x250"])
    analyst = member(campaign.advertiser, Role.ANALYST)
    outsider = member(other.advertiser, Role.ADMIN)

    page = analyst.get(f"/line-items/{li.pk}/").content.decode()
    analyst_codes = [
        analyst.get(f"/line-items/{li.pk}/edit/").status_code,
        analyst.post(f"/line-items/{li.pk}/pause/").status_code,
        analyst.post(f"/line-items/{li.pk}/creatives/", {}).status_code,
    ]
    outsider_codes = [
        outsider.get(f"/line-items/{li.pk}/").status_code,
        outsider.get(f"/line-items/{li.pk}/edit/").status_code,
        outsider.get(f"/line-items/{li.pk}/creatives/").status_code,
        outsider.post(f"/line-items/{li.pk}/archive/").status_code,
    ]

    assert "data-write-actions" not in page
    assert analyst_codes == [403, 403, 403]
    assert outsider_codes == [404, 404, 404, 404]


def test_a_week_grid_becomes_as_few_dayparts_as_it_can() -> None:
    cells = [f"{d}:{h}" for d in range(7) for h in (7, 8, 18)] + ["6:23"]

    assert dayparts_from_cells(cells) == [
        {"days": [0, 1, 2, 3, 4, 5, 6], "start": "07:00", "end": "09:00"},
        {"days": [0, 1, 2, 3, 4, 5, 6], "start": "18:00", "end": "19:00"},
        {"days": [6], "start": "23:00", "end": "24:00"},
    ]


def test_the_region_picker_lists_a_countrys_regions() -> None:
    campaign = make_campaign(active=False)
    client = member(campaign.advertiser)

    regions = client.get("/targeting/regions/?country=FR&country=XX").json()["regions"]

    assert ["FR-IDF", "Île-de-France (FR-IDF)"] in regions
    assert all(code.startswith("FR-") for code, _ in regions)
