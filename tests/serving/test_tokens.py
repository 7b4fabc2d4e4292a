import pytest

from serving.tokens import InvalidToken, TokenSigner, TrackingToken

TOKEN = TrackingToken(
    kind="imp",
    decision_id="req-0",
    placement_id=1,
    line_item_id=2,
    campaign_id=3,
    advertiser_id=4,
    creative_id=5,
    cpm_micros=1_230_000,
    issued_at=1_800_000_000,
)


def test_a_signed_token_verifies_to_its_payload() -> None:
    signer = TokenSigner("k1")

    assert signer.verify(signer.sign(TOKEN), "imp") == TOKEN


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
        lambda t: t[:5] + ("A" if t[5] != "A" else "B") + t[6:],  # payload
        lambda t: t.split(".")[0],  # no signature
        lambda t: "!!!." + t.split(".")[1],  # not base64
    ],
)
def test_a_tampered_token_is_rejected(tamper) -> None:
    signer = TokenSigner("k1")

    with pytest.raises(InvalidToken):
        signer.verify(tamper(signer.sign(TOKEN)), "imp")


def test_another_key_or_kind_is_rejected() -> None:
    text = TokenSigner("k1").sign(TOKEN)

    with pytest.raises(InvalidToken, match="does not match"):
        TokenSigner("k2").verify(text, "imp")
    with pytest.raises(InvalidToken, match="for imp, not clk"):
        TokenSigner("k1").verify(text, "clk")


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respellings(part: str) -> list[str]:
    """Every other last character that decodes to the same bytes (the unused low bits)."""
    unused = {2: 4, 3: 2}.get(len(part) % 4, 0)  # 16 bytes: 22 characters, 4 unused bits
    value = B64URL.index(part[-1])
    high = value & ~((1 << unused) - 1)
    return [part[:-1] + B64URL[high | low] for low in range(1 << unused) if high | low != value]


def test_only_the_canonical_spelling_of_a_token_verifies() -> None:
    signer = TokenSigner("k1")
    text = signer.sign(TOKEN)
    body, tag = text.split(".")
    tags, bodies = _respellings(tag), _respellings(body)
    assert len(tags) == 15  # 16 spellings of a 16-byte tag decode alike

    for spelling in [f"{body}.{t}" for t in tags] + [f"{b}.{tag}" for b in bodies]:
        with pytest.raises(InvalidToken, match="not base64url"):
            signer.verify(spelling, "imp")
    for spelling in (f"{body}.{tag}==", f"{body}=.{tag}", f"{body}.{tag[:3]}!{tag[3:]}"):
        with pytest.raises(InvalidToken, match="not base64url"):
            signer.verify(spelling, "imp")
    assert signer.verify(text, "imp") == TOKEN
