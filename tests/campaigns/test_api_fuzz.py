"""A bounded fuzz run of the OpenAPI schema: whatever schemathesis sends, nothing answers 5xx.

Every operation, as ad-ops staff and as an organisation's analyst (read-only), derandomised.
FUZZ_EXAMPLES sets the examples per operation (20 by default in `bin/test`; `.ci/run` runs it
again with `FUZZ_EXAMPLES=100`, the run issue 12 asks for: about 2 minutes per role on the
two-core machine, 59 operations, so about 5,900 requests each).
"""

import json
import os
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from adsplatform.api.throttling import TokenRateThrottle
from campaigns.models import ApiToken, Membership, Role
from tests.factories import make_campaign, make_line_item

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "20"))


@pytest.mark.parametrize("who", ["staff", "analyst"])
def test_no_operation_answers_5xx_to_generated_input(
    who: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fuzz run is about the operations, not the rate limit: unthrottled, every generated
    # request reaches its view (throttled, most answered 429 after the first minute).
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": None})
    campaign = make_campaign()
    make_line_item(campaign, "2.00")
    user = get_user_model().objects.create_user("fuzzer", is_staff=who == "staff")
    if who == "analyst":
        Membership.objects.create(user=user, advertiser=campaign.advertiser, role=Role.ANALYST)
    _, key = ApiToken.issue(user, "fuzz")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    raw = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schema = schemathesis.openapi.from_dict(raw)
    strategies = [result.ok().as_strategy() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    failures: list[str] = []
    calls = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same inputs every run: a failure reproduces
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: Any) -> None:
        nonlocal calls
        for strategy in strategies:
            case = data.draw(strategy)
            body = case.body if not isinstance(case.body, type(None)) else None
            # A savepoint per call: a database error must show as that call's failure, not
            # abort the test's transaction for every call after it.
            try:
                with transaction.atomic():
                    response = client.generic(
                        case.method.upper(),
                        case.formatted_path,
                        data=json.dumps(body, default=str) if body is not None else "",
                        content_type="application/json",
                        QUERY_STRING=urlencode(case.query or {}, doseq=True),
                    )
            except Exception as exc:  # an exception the view let out: a 500 in production
                failures.append(f"{case.method} {case.formatted_path} {body!r}: {exc!r}")
                continue
            finally:
                calls += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {body!r}")

    run()

    # At least one call per operation and example (an example that a later draw rejects
    # has made its first calls already and is replaced by another).
    assert calls >= EXAMPLES_PER_OPERATION * len(strategies)
    assert failures == []
