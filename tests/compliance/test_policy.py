import pytest

from compliance.policy import PrivacySignals, evaluate

TC = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"


def test_gdpr_without_a_consent_string_gets_no_ad() -> None:
    for tc in (None, "", "not a tc string!"):
        permissions = evaluate(PrivacySignals(gdpr=1, tc_string=tc))
        assert (permissions.serve, permissions.reason) == (False, "gdpr_no_consent")


def test_gdpr_with_a_consent_string_may_serve() -> None:
    assert evaluate(PrivacySignals(gdpr=1, tc_string=TC)).serve


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        (PrivacySignals(us_privacy="1YYN"), "us_privacy_opt_out"),
        (PrivacySignals(coppa=1), "coppa"),
        (PrivacySignals(lmt=1), "limit_tracking"),
        (PrivacySignals(gpc="1"), "limit_tracking"),
    ],
)
def test_opt_outs_serve_without_personalisation(signals: PrivacySignals, reason: str) -> None:
    permissions = evaluate(signals)

    assert (permissions.serve, permissions.personalise, permissions.use_ids) == (True, False, False)
    assert permissions.reason == reason


def test_no_signals_allow_everything() -> None:
    permissions = evaluate(PrivacySignals(us_privacy="1YNN"))

    assert (permissions.serve, permissions.personalise, permissions.use_ids) == (True, True, True)
