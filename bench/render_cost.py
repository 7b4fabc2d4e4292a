"""The serving cost of rendering one of our own ads: sign its token and fill its markup.

Run: .venv/bin/python bench/render_cost.py [--n 20000]

The markup is the real templates' (image, HTML5 tag, native HTML and JSON, VAST InLine) for
unsaved creatives; each round is what `serving.render.Renderer._render` does per decision
for our own line items (one HMAC, `fill` of the markup and native JSON). Prints microseconds
per ad for each kind. In process, no Redis or database.
"""

import argparse
import os
import sys
import tempfile
import timeit
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import configure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    configure(Path(tempfile.mkdtemp()))
    import django

    django.setup()
    from campaigns.models import Advertiser
    from creatives.models import Creative, CreativeKind
    from creatives.rendering import render_markup, render_native_json
    from serving.render import fill
    from serving.tokens import TokenSigner, TrackingToken

    advertiser = Advertiser(name="Bench")
    common = {"advertiser": advertiser, "width": 300, "height": 250, "name": "Bench"}
    kinds = {
        "image": Creative(kind=CreativeKind.IMAGE, image="a/b.png", **common),
        "html5": Creative(kind=CreativeKind.HTML5, html_tag="<b>ad</b>", **common),
        "native": Creative(
            kind=CreativeKind.NATIVE,
            image="a/b.png",
            title="T",
            body="B",
            call_to_action="Go",
            sponsored_by="S",
            **common,
        ),
        "vast": Creative(
            kind=CreativeKind.VIDEO,
            vast_tag_url="https://x.test/vast.xml",
            duration=Decimal(15),
            **common,
        ),
    }
    signer = TokenSigner(os.environ["SERVING_SIGNING_KEY"])
    token = TrackingToken(
        kind="imp", decision_id="r-0", placement_id=1, line_item_id=2, campaign_id=3,
        advertiser_id=4, creative_id=5, cpm_micros=1_500_000, issued_at=1_800_000_000,
        landing_url="https://example.test/landing",
    )  # fmt: skip
    for name, creative in kinds.items():
        markup = render_markup(creative)
        native = render_native_json(creative) if name == "native" else ""

        def one(markup: str = markup, native: str = native) -> None:
            signed = signer.sign(token)
            imp, click = f"https://ads.test/v1/imp/{signed}", f"https://ads.test/v1/click/{signed}"
            fill(markup, imp, click, "r-0")
            fill(native, imp, click, "r-0")

        best = min(timeit.repeat(one, number=args.n, repeat=5)) / args.n
        print(f"{name:7s} {best * 1e6:6.2f} us/ad  markup {len(markup)} bytes")


if __name__ == "__main__":
    main()
