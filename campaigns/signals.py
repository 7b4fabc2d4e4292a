"""Republish the serving snapshot after any committed change to what serving reads.

This is cache invalidation, not business logic: whichever path wrote the row (a service,
admin, a bulk upload, the shell), serving must see the change within seconds.
"""

from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from campaigns.models import (
    Advertiser,
    ApiToken,
    Campaign,
    Deal,
    LineItem,
    LineItemCreative,
    Placement,
    Publisher,
)
from campaigns.snapshot import request_snapshot_publish
from creatives.models import Creative


def _on_change(sender: type, **kwargs: Any) -> None:
    transaction.on_commit(request_snapshot_publish)


def connect() -> None:
    # ApiToken: staff tokens unlock ?explain=1 in serving; a revoked one must stop working.
    models = (Advertiser, Campaign, LineItem, LineItemCreative, Placement, Publisher, Creative)
    for model in (*models, Deal, ApiToken):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"snapshot-save-{model.__name__}")
        post_delete.connect(
            _on_change, sender=model, dispatch_uid=f"snapshot-delete-{model.__name__}"
        )
    for through in (LineItem.placements.through, LineItem.deals.through):
        m2m_changed.connect(_on_change, sender=through, dispatch_uid=f"snapshot-m2m-{through}")
