"""The external buyers' part of the serving snapshot (`campaigns.snapshot` calls it)."""

from datetime import datetime

import msgspec

from compliance.gvl import GlobalVendorList
from serving.models import Buyer
from serving.snapshot import BuyerSnap, VendorClaims


def vendor_claims(gvl: GlobalVendorList, vendor_id: int | None, now: datetime) -> VendorClaims:
    """What the GVL declares for a vendor; unlisted when it is absent or deleted by `now`."""
    vendor = gvl.vendor(vendor_id) if vendor_id is not None else None
    if vendor is None or vendor.is_deleted(now):
        return VendorClaims(gvl.vendor_list_version, listed=False)
    return VendorClaims(
        gvl.vendor_list_version,
        listed=True,
        purposes=vendor.purposes,
        leg_int_purposes=vendor.leg_int_purposes,
        flexible_purposes=vendor.flexible_purposes,
        special_features=vendor.special_features,
    )


def buyer_snaps(
    gvl: GlobalVendorList | None = None, now: datetime | None = None
) -> list[BuyerSnap]:
    """Enabled buyers as serving calls them, in a stable order (by id), each with its
    vendor's GVL declarations when a GVL is loaded."""
    snaps = [buyer.to_snap() for buyer in Buyer.objects.enabled().order_by("id")]
    if gvl is None or now is None:
        return snaps
    return [
        msgspec.structs.replace(snap, gvl=vendor_claims(gvl, snap.gvl_vendor_id, now))
        for snap in snaps
    ]
