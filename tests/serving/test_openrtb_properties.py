"""Property tests: nothing but OpenRtbError escapes the OpenRTB decoders, whatever arrives."""

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.openrtb import OpenRtbError, decode_bid_request, decode_bid_response, to_context
from tests.serving.openrtb_helpers import FX

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_ints = st.integers(min_value=-2, max_value=2000)
_flags = st.sampled_from([0, 1])
_words = st.text(max_size=6) | st.sampled_from(["USA", "us", "DEU", "CA", "US-CA", "https://a.b/"])
_words_list = st.lists(_words, max_size=3)
_floats = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-5, 10**14)
_size = st.fixed_dictionaries({}, optional={"w": _ints, "h": _ints})
_deal = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=4)},
    optional={
        "bidfloor": _floats,
        "bidfloorcur": st.sampled_from(["USD", "EUR", "XYZ"]),
        "at": _ints,
        "wseat": _words_list,
        "wadomain": _words_list,
    },
)
_imp = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["1", "2", "3"]),
        "banner": st.fixed_dictionaries(
            {}, optional={"w": _ints, "h": _ints, "format": st.lists(_size, max_size=3)}
        ),
    },
    optional={
        "tagid": st.sampled_from(["pk", "other"]),
        "video": st.fixed_dictionaries(
            {"mimes": _words_list},
            optional={"w": _ints, "h": _ints, "protocols": st.lists(_ints, max_size=3)},
        ),
        "audio": st.fixed_dictionaries({"mimes": _words_list}),
        "native": st.fixed_dictionaries({"request": _words | st.dictionaries(_words, _json)}),
        "bidfloor": _floats,
        "bidfloorcur": st.sampled_from(["USD", "EUR", "XYZ", ""]),
        "secure": _flags,
        "pmp": st.fixed_dictionaries(
            {}, optional={"private_auction": _flags, "deals": st.lists(_deal, max_size=2)}
        ),
    },
)
_property = st.fixed_dictionaries(
    {},
    optional={
        "domain": _words,
        "page": _words,
        "bundle": _words,
        "cat": _words_list,
        "keywords": _words | _words_list,
        "kwarray": _words_list,
        "content": st.fixed_dictionaries({}, optional={"cat": _words_list}),
    },
)
# The ext objects are typed Any on the wire, so to_context sees whatever arrives there.
_ext = st.dictionaries(
    st.sampled_from(["gdpr", "us_privacy", "gpp", "gpp_sid", "gpc", "consent", "schain"]),
    _json,
    max_size=4,
)
_typed_request = st.fixed_dictionaries(
    {"id": st.just("r"), "imp": st.lists(_imp, min_size=1, max_size=3)},
    optional={
        "site": _property,
        "app": _property,
        "device": st.fixed_dictionaries(
            {},
            optional={
                "devicetype": _ints,
                "lmt": _flags,
                "ip": _words,
                "geo": st.fixed_dictionaries(
                    {},
                    optional={
                        "country": _words,
                        "region": _words,
                        "lat": _floats,
                        "lon": _floats,
                        "zip": _words,
                    },
                ),
            },
        ),
        "user": st.fixed_dictionaries(
            {},
            optional={
                "keywords": _words | _words_list,
                "data": st.lists(
                    st.fixed_dictionaries(
                        {"segment": st.lists(st.fixed_dictionaries({"id": _words}), max_size=2)}
                    ),
                    max_size=2,
                ),
                "ext": _ext,
            },
        ),
        "regs": st.fixed_dictionaries({}, optional={"gdpr": _flags, "ext": _ext}),
        "source": st.fixed_dictionaries({}, optional={"tid": _words, "ext": _ext}),
        "at": _ints,
    },
)


def _decode_and_map(body: bytes) -> None:
    try:
        request = decode_bid_request(body)
        to_context(request, request_id="r", now=0.0, currency="USD", fx=FX, sec_gpc="1")
    except OpenRtbError:
        pass


_property_settings = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_property_settings
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_openrtb_errors(body: bytes) -> None:
    _decode_and_map(body)


@_property_settings
@given(_json)
def test_arbitrary_json_raises_only_openrtb_errors(value: Any) -> None:
    _decode_and_map(msgspec.json.encode(value))


@_property_settings
@given(_typed_request)
def test_well_typed_requests_raise_only_openrtb_errors(value: dict[str, Any]) -> None:
    _decode_and_map(msgspec.json.encode(value))


_response_like = st.fixed_dictionaries(
    {"id": st.just("r")},
    optional={
        "cur": _json_scalars,
        "nbr": _json_scalars,
        "seatbid": st.lists(
            st.fixed_dictionaries(
                {
                    "bid": st.lists(
                        st.fixed_dictionaries(
                            {"id": st.just("b"), "impid": st.just("1"), "price": _json_scalars},
                            optional={"adomain": _json, "w": _json_scalars, "ext": _json},
                        ),
                        max_size=2,
                    )
                },
                optional={"seat": _json_scalars},
            ),
            max_size=2,
        ),
    },
)


@_property_settings
@given(
    st.binary(max_size=200)
    | _json.map(msgspec.json.encode)
    | _response_like.map(msgspec.json.encode)
)
def test_bid_responses_raise_only_openrtb_errors(body: bytes) -> None:
    try:
        response = decode_bid_response(body)
    except OpenRtbError:
        return
    assert all(bid.price.is_finite() for seat in response.seatbid for bid in seat.bid)
