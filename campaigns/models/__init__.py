from campaigns.models.audit import AuditAction, AuditEntry
from campaigns.models.bulk import BulkUpload as BulkUpload
from campaigns.models.core import (
    Advertiser,
    BidStrategy,
    BidType,
    Campaign,
    CampaignStatus,
    CreativeRotation,
    Deal,
    GoalType,
    LineItem,
    LineItemCreative,
    LineItemStatus,
    Membership,
    PacingMode,
    Placement,
    PriorityTier,
    Publisher,
    Role,
)
from campaigns.models.fx import FxRateSet
from campaigns.models.tokens import ApiToken

__all__ = [
    "Advertiser",
    "ApiToken",
    "AuditAction",
    "AuditEntry",
    "BidStrategy",
    "BidType",
    "Campaign",
    "CampaignStatus",
    "CreativeRotation",
    "Deal",
    "FxRateSet",
    "GoalType",
    "LineItem",
    "LineItemCreative",
    "LineItemStatus",
    "Membership",
    "PacingMode",
    "Placement",
    "PriorityTier",
    "Publisher",
    "Role",
]
