"""The first-party ad request, validated by msgspec: a wrong field is a 400 naming its path."""

from typing import Annotated

import msgspec

Size = Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$")]
Flag = Annotated[int, msgspec.Meta(ge=0, le=1)]


class Slot(msgspec.Struct, frozen=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    sizes: Annotated[list[Size], msgspec.Meta(min_length=1, max_length=20)]


class Regs(msgspec.Struct, frozen=True):
    gdpr: Flag | None = None
    us_privacy: str | None = None
    gpp: str | None = None
    gpp_sid: list[int] | None = None
    coppa: Flag | None = None


class User(msgspec.Struct, frozen=True):
    id: str | None = None
    consent: str | None = None  # TCF TC string


class Device(msgspec.Struct, frozen=True):
    ua: str | None = None
    ip: str | None = None
    devicetype: int | None = None
    os: str | None = None
    ifa: str | None = None
    lmt: Flag | None = None


class AdRequest(msgspec.Struct, frozen=True):
    placement: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    slots: Annotated[list[Slot], msgspec.Meta(min_length=1, max_length=10)]
    device: Device | None = None
    user: User | None = None
    regs: Regs | None = None
    keywords: list[str] = []


ad_request_decoder = msgspec.json.Decoder(AdRequest)
