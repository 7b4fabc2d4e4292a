"""The external buyers' part of the serving snapshot (`campaigns.snapshot` calls it)."""

from serving.models import Buyer
from serving.snapshot import BuyerSnap


def buyer_snaps() -> list[BuyerSnap]:
    """Enabled buyers as serving calls them, in a stable order (by id)."""
    return [buyer.to_snap() for buyer in Buyer.objects.enabled().order_by("id")]
