"""Serving prices CPC line items with the promoted pCTR model from the snapshot, through the
real ASGI app on the real Redis and Postgres: explain shows each candidate's pCTR, the
winner follows the model, a target-CPA line item bids CPA x pCTR x pCVR up to its bid, and the
personal feature counts only with consent."""

import math
import re
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from redis import Redis

from campaigns import services
from campaigns.models import ApiToken, BidType, Campaign, GoalType, LineItem
from campaigns.snapshot import publish_snapshot
from reporting.conversions.models import Attribution, Conversion, Source
from reporting.learning.registry import promote
from reporting.models import CreativeHourly, ModelKind, ModelVersion
from serving.app import ServingApp
from serving.pctr import FEATURE_SET, CtrModel, Scorer, encode_model, slot
from tests.factories import make_campaign, make_line_item, make_placement, make_video_creative
from tests.serving.test_app import ad_body, config, with_client
from tests.serving.test_serving_path import stream_events

pytestmark = pytest.mark.django_db

BITS = 16
MASK = (1 << BITS) - 1
BIAS = math.log(0.002 / 0.998)  # 0.2 % anywhere the model knows nothing better
BRAZIL, CALIFORNIA = 2.5, 1.5


def _live_model(
    name: str, value: str, weight: float, kind: str = ModelKind.PCTR, **more: tuple[object, float]
) -> CtrModel:
    """A promoted model of `kind` whose non-zero weights are the `name=value` feature's (and
    `more`'s: name=(value, weight))."""
    features = {slot(name, value, MASK): weight}
    features.update({slot(n, v, MASK): w for n, (v, w) in more.items()})
    model = CtrModel(
        0, FEATURE_SET, BITS, BIAS, list(features), list(features.values()), base_ctr=0.01
    )
    start = datetime(2027, 1, 1, tzinfo=UTC)
    version = ModelVersion.objects.create(
        kind=kind, feature_set=FEATURE_SET, train_start=start, train_end=start, holdout_start=start,
        holdout_end=start, metrics={}, weights=encode_model(model),
    )  # fmt: skip
    promote(version)
    return version.model()


@pytest.fixture
def book() -> dict[str, Any]:
    placement = make_placement()
    campaign = make_campaign()
    cpc = make_line_item(campaign, "0.50")
    services.update_line_item(cpc, bid_type=BidType.CPC, click_url="https://shop.example/")
    cpm = make_line_item(campaign, "2.00")
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    _, key = ApiToken.issue(staff, "explain")
    return {"placement": placement, "cpc": cpc, "cpm": cpm, "token": key}


def _explain(book: dict[str, Any], *bodies: dict[str, Any]) -> list[dict[int, dict[str, Any]]]:
    headers = {"authorization": f"Bearer {book['token']}"}

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[Any]:
        return [
            await client.post("/v1/ad?explain=1", json=body, headers=headers) for body in bodies
        ]

    out = []
    for answer in with_client(scenario):
        assert answer.status_code == 200, answer.headers
        [report] = answer.json()["explain"]
        out.append({line["line_item"]: line for line in report["line_items"]})
    return out


def _reference(model: CtrModel, book: dict[str, Any], **context: Any) -> float:
    """The training code's scorer on the same features as a telemetry row would hold."""
    scorer = Scorer(model)
    li = book["cpc"]
    creative = li.assignments.get().creative_id
    row = {"placement": book["placement"].pk, "size": "300x250", "format": "banner", **context}
    return scorer.predict(scorer.context_sum(row), book["placement"].pk, li.pk, creative)


def test_serving_prices_cpc_with_the_promoted_model_and_explain_shows_its_pctr(
    book: dict[str, Any],
) -> None:
    shoes = zlib.crc32(b"shoes")  # a keyword is a feature by its hash, as the files hold it
    model = _live_model("country", "BR", BRAZIL, keyword=(shoes, 0.3), category=("IAB1", 0.2))
    publish_snapshot()
    key = book["placement"].key
    brazilian = ad_body(
        key,
        device={"geo": {"country": "BR"}, "devicetype": 2},
        keywords=["shoes"],
        site={"categories": ["IAB1"]},
    )
    american = ad_body(key, device={"geo": {"country": "US"}, "devicetype": 2})

    br, us = _explain(book, brazilian, american)

    cpc, cpm = book["cpc"].pk, book["cpm"].pk
    expected_br = _reference(
        model, book, country="BR", device_type=2, keyword_hashes=[shoes],
        content_categories=["IAB1"],
    )  # fmt: skip
    assert br[cpc]["pctr"] == round(expected_br, 6)
    assert 0.038 < expected_br < 0.040  # sigmoid(logit(0.002) + 2.5 + 0.3 + 0.2)
    assert br[cpc]["ecpm"] == str((Decimal("0.50") * Decimal(expected_br) * 1000).quantize(
        Decimal("0.0001")))  # fmt: skip
    assert (br[cpc]["result"], br[cpm]["result"]) == ("won", "outbid")
    # In the US the model knows nothing better than 0.2 %: 1.00 CPM loses to 2.00.
    assert us[cpc]["pctr"] == round(_reference(model, book, country="US", device_type=2), 6)
    assert us[cpc]["ecpm"] == "1.0000"
    assert (us[cpc]["result"], us[cpm]["result"]) == ("outbid", "won")
    assert "pctr" not in us[cpm]  # a CPM bid is what it is


def test_the_region_counts_only_with_consent_to_personalise(book: dict[str, Any]) -> None:
    live = _live_model("region", "US-CA", CALIFORNIA)
    publish_snapshot()
    key = book["placement"].key
    geo = {"geo": {"country": "US", "region": "US-CA"}}
    consented = ad_body(key, device=geo)
    opted_out = ad_body(key, device=geo, regs={"us_privacy": "1YYY"})

    with_consent, without = _explain(book, consented, opted_out)

    cpc = book["cpc"].pk
    personal = _reference(live, book, country="US", region="US-CA")
    contextual = _reference(live, book, country="US", region="")
    assert personal > contextual * 4
    assert with_consent[cpc]["pctr"] == round(personal, 6)
    assert without[cpc]["pctr"] == round(contextual, 6)


def _target_cpa_line_item() -> LineItem:
    """A line item bidding 5.00 in a target-CPA campaign (CPA 20.00)."""
    campaign = make_campaign()
    Campaign.objects.filter(pk=campaign.pk).update(
        goal_type=GoalType.TARGET_CPA, goal_target=Decimal("20.00")
    )
    return make_line_item(campaign, "5.00")


def test_a_target_cpa_line_item_bids_cpa_x_pctr_x_smoothed_pcvr_up_to_its_bid(
    book: dict[str, Any],
) -> None:
    li = _target_cpa_line_item()
    campaign = li.campaign
    creative = li.assignments.get().creative_id
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    CreativeHourly.objects.create(
        hour=hour, line_item_id=li.pk, creative_id=creative, campaign_id=campaign.pk,
        advertiser_id=campaign.advertiser_id, impressions=5000, clicks=100,
    )  # fmt: skip
    for n in range(10):
        Conversion.objects.create(
            advertiser_id=campaign.advertiser_id, event="purchase", converted_at=hour,
            source=Source.POSTBACK, attribution=Attribution.CLICK, campaign_id=campaign.pk,
            line_item_id=li.pk, creative_id=creative, stream_id=f"0-{n}",
        )  # fmt: skip
    model = _live_model("country", "BR", BRAZIL)
    publish_snapshot()
    key = book["placement"].key

    us, br = _explain(
        book,
        ad_body(key, device={"geo": {"country": "US"}}),
        ad_body(key, device={"geo": {"country": "BR"}}),
    )

    # Conversions per click, smoothed with 50 clicks' worth of the overall 10.5 / 101.
    pcvr = (10 + 50 * (10.5 / 101)) / (100 + 50)
    pctr = Scorer(model).predict(Scorer(model).context_sum({
        "placement": book["placement"].pk, "country": "US", "size": "300x250",
        "format": "banner"}), book["placement"].pk, li.pk, creative)  # fmt: skip
    value = Decimal(round(20_000_000 * pctr * pcvr * 10)).scaleb(-4)
    assert us[li.pk]["ecpm"] == str(value)
    assert Decimal(us[li.pk]["ecpm"]) < Decimal("5.00")
    assert us[li.pk]["result"] == "won"  # 4.05 over the CPM line item's 2.00
    assert br[li.pk]["ecpm"] == "5.0000"  # worth more in Brazil: never above its bid


def test_a_cpc_pctr_is_capped_at_its_ceiling_the_index_ranks_it_by(book: dict[str, Any]) -> None:
    _live_model("country", "BR", 5.0)  # sigmoid(logit(0.002) + 5) is about 0.23
    publish_snapshot()

    [br] = _explain(book, ad_body(book["placement"].key, device={"geo": {"country": "BR"}}))

    # The window's CTR 0.01 for a line item it never saw, times LEARNING_PCTR_CEILING_RATIO 5.
    cpc = book["cpc"].pk
    assert br[cpc]["pctr"] == 0.05
    assert br[cpc]["ecpm"] == "25.0000"
    assert br[cpc]["creative_pctr"] == {
        str(book["cpc"].assignments.get().creative_id): round(_reference_br_uncapped(), 6)
    }


def _reference_br_uncapped() -> float:
    z = BIAS + 5.0
    return 1 / (1 + math.exp(-z))


CLICK_THROUGH_RE = re.compile(r"<ClickThrough[^>]*><!\[CDATA\[([^\]]+)\]\]>")


def test_a_pod_ads_click_is_charged_with_the_pctr_its_price_was_set_by(
    redis_client: Redis,
) -> None:
    placement = make_placement()
    cpc = make_campaign()
    spot = make_video_creative(cpc.advertiser, seconds=15)
    li = services.create_line_item(
        campaign=cpc, name="CPC spot", bid=Decimal("0.50"), sizes=["300x250"], creatives=[spot],
    )  # fmt: skip
    services.update_line_item(li, bid_type=BidType.CPC, click_url="https://shop.example/")
    cpm = make_campaign()
    other = make_video_creative(cpm.advertiser, seconds=30)
    services.create_line_item(
        campaign=cpm, name="CPM spot", bid=Decimal("5.00"), sizes=["300x250"], creatives=[other],
    )  # fmt: skip
    _live_model("placement", str(placement.pk), 2.5)  # every request of the placement
    publish_snapshot()
    pctr = 1 / (1 + math.exp(-(BIAS + 2.5)))  # about 0.024: eCPM 12.05, above the 5.00

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> str:
        query = f"placement={placement.key}&w=1280&h=720&poddur=30&maxseq=1"
        vast = (await client.get(f"/v1/vast?{query}")).text
        [click] = CLICK_THROUGH_RE.findall(vast)
        assert (await client.get(click, follow_redirects=False)).status_code == 302
        await app.sink.drain()
        return vast

    vast = with_client(scenario, config(public_url="http://ads.test"))

    assert f'<Ad id="{spot.pk}"' in vast
    [clk] = [e for e in stream_events(redis_client) if e.t == "clk"]
    assert clk.cr == spot.pk
    # Cleared a cent over the CPM spot left out of the pod, 5.01; a click costs that CPM over
    # the model's pCTR (the prior's 0.002 would charge the whole 0.50 bid).
    per_click = Decimal("5.01") / (Decimal(repr(round(pctr, 6))) * 1000)
    assert clk.cpm / 1e9 == pytest.approx(float(per_click), rel=1e-3)
    assert clk.cpm < 500_000_000


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_a_target_cpa_line_item_bids_with_the_live_pcvr_model_personal_only_with_consent(
    book: dict[str, Any],
) -> None:
    li = _target_cpa_line_item()
    creative = li.assignments.get().creative_id
    _live_model("country", "BR", BRAZIL)  # 0.2 % in the US
    _live_model("region", "US-CA", 3.0, kind=ModelKind.PCVR)
    publish_snapshot()
    key = book["placement"].key
    geo = {"geo": {"country": "US", "region": "US-CA"}}

    consented, opted_out = _explain(
        book, ad_body(key, device=geo), ad_body(key, device=geo, regs={"us_privacy": "1YYY"})
    )

    pctr = _sigmoid(BIAS)
    personal, contextual = _sigmoid(BIAS + 3.0), _sigmoid(BIAS)
    line = consented[li.pk]
    assert (line["pcvr"], line["pcvr_from"]) == (round(personal, 6), "model")
    assert line["creative_pcvr"] == {str(creative): round(personal, 6)}
    assert line["pctr"] == round(pctr, 6)
    assert line["ecpm"] == str(Decimal(round(20_000_000 * pctr * personal * 10)).scaleb(-4))
    # Without consent to personalise the region is "" in the pCVR model too.
    assert opted_out[li.pk]["pcvr"] == round(contextual, 6)
    assert opted_out[li.pk]["ecpm"] == str(
        Decimal(round(20_000_000 * pctr * contextual * 10)).scaleb(-4)
    )
    assert "pcvr" not in consented[book["cpc"].pk]  # a CPC bid needs no pCVR


def test_without_a_pcvr_model_explain_shows_the_smoothed_pcvr(book: dict[str, Any]) -> None:
    li = _target_cpa_line_item()
    _live_model("country", "BR", BRAZIL)
    publish_snapshot()

    [us] = _explain(book, ad_body(book["placement"].key, device={"geo": {"country": "US"}}))

    # No clicks nor conversions yet: 50 clicks' worth of the prior 0.5 / 1.
    assert (us[li.pk]["pcvr"], us[li.pk]["pcvr_from"]) == (0.5, "smoothed")
    assert "creative_pcvr" not in us[li.pk]
