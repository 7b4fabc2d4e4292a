"""Republish the serving snapshot after a committed change to a buyer.

Cache invalidation, as in `campaigns.signals`: whichever path saved or deleted the row
(admin, the shell, a data migration), serving processes must see it within seconds.
Admin's enable/disable actions use `QuerySet.update`, which sends no signal; they request
the publish themselves.
"""

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from campaigns.snapshot import request_snapshot_publish
from serving.models import Buyer


def _on_change(sender: type, **kwargs: Any) -> None:
    transaction.on_commit(request_snapshot_publish)


def connect() -> None:
    post_save.connect(_on_change, sender=Buyer, dispatch_uid="snapshot-save-Buyer")
    post_delete.connect(_on_change, sender=Buyer, dispatch_uid="snapshot-delete-Buyer")
