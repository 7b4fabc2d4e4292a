"""GDPR by geography: a request without regs.gdpr from the EEA, the UK or Switzerland is
treated as gdpr = 1, through the policy and through the serving app on the real Redis."""

import httpx
import pytest

from compliance.geography import GDPR_COUNTRIES, parse_country_list
from compliance.policy import PrivacySignals, apply_gdpr_by_geography, evaluate
from serving.app import ServingApp
from tests.compliance.test_policy import FULL, US
from tests.serving.test_app import ad_body, config, placement_key, with_client

__all__ = ["placement_key"]  # the fixture, imported for its use below


@pytest.mark.parametrize(
    ("gdpr", "country", "expected"),
    [
        (None, "DE", 1),  # EU
        (None, "no", 1),  # EEA, any case
        (None, "GB", 1),
        (None, "CH", 1),
        (None, "US", None),
        (None, None, None),  # unknown country: nothing inferred
        (0, "DE", 0),  # the publisher's explicit answer wins
        (1, "US", 1),
    ],
)
def test_gdpr_is_inferred_only_when_absent_and_the_country_is_listed(
    gdpr: int | None, country: str | None, expected: int | None
) -> None:
    signals = apply_gdpr_by_geography(PrivacySignals(gdpr=gdpr), country, GDPR_COUNTRIES)
    assert signals.gdpr == expected
    assert signals.gdpr_by_geo == (gdpr is None and expected == 1)


def test_an_inferred_gdpr_needs_a_tc_string_and_the_ledger_says_why() -> None:
    signals = apply_gdpr_by_geography(PrivacySignals(), "FR", GDPR_COUNTRIES)
    blocked = evaluate(signals, US)
    assert (blocked.serve, blocked.reason) == (False, "gdpr_no_consent")
    assert blocked.ledger == ("gdpr=1(geo)", "tcf=missing")
    consented = evaluate(
        apply_gdpr_by_geography(PrivacySignals(tc_string=FULL), "FR", GDPR_COUNTRIES), US
    )
    assert consented.serve and consented.personalise


def test_the_country_list_setting_refuses_what_is_not_a_country_code() -> None:
    assert parse_country_list(["de", " at ", ""], "GDPR_COUNTRIES") == {"DE", "AT"}
    with pytest.raises(ValueError, match="GDPR_COUNTRIES: 'EUR' is not"):
        parse_country_list(["DE", "EUR"], "GDPR_COUNTRIES")


@pytest.mark.django_db
def test_serving_treats_eea_traffic_without_regs_gdpr_as_gdpr(placement_key: str) -> None:
    def body(country: str, **extra: object) -> dict[str, object]:
        return ad_body(placement_key, device={"geo": {"country": country}}, **extra)

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        return [
            await client.post("/v1/ad", json=body("DE")),
            await client.post("/v1/ad", json=body("DE", regs={"gdpr": 0})),
            await client.post("/v1/ad", json=body("US")),
            await client.post("/v1/ad", json=body("PL", user={"consent": FULL})),
        ]

    de, de_explicit_no, us, pl_consented = with_client(scenario)
    assert (de.status_code, de.headers["x-no-fill-reason"]) == (204, "gdpr_no_consent")
    assert de_explicit_no.status_code == 200
    assert us.status_code == 200
    assert pl_consented.status_code == 200


@pytest.mark.django_db
def test_the_country_list_is_configurable(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        body = ad_body(placement_key, device={"geo": {"country": "DE"}})
        other = ad_body(placement_key, device={"geo": {"country": "BR"}})
        return [
            (await client.post("/v1/ad", json=body)).status_code,
            (await client.post("/v1/ad", json=other)).status_code,
        ]

    assert with_client(scenario, config(gdpr_countries=frozenset({"BR"}))) == [200, 204]
