"""Which model version is live: promotion and roll back, each one short transaction.

Promotion retires the live version and makes the new one live with two UPDATEs (no row
locks held across anything slow), then republishes the snapshot after the commit, so
serving picks the weights up. The partial unique constraint `one_live_model_per_kind`
refuses a second live version should two promotions race; the loser retries once, behind
the winner's commit.
"""

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.snapshot import request_snapshot_publish
from reporting.models import ModelKind, ModelStatus, ModelVersion

log = logging.getLogger(__name__)


def _make_live(version_id: int, kind: str, by: Any) -> int:
    now = timezone.now()
    with transaction.atomic():
        ModelVersion.objects.live(kind).exclude(pk=version_id).update(
            status=ModelStatus.RETIRED, retired_at=now
        )
        changed = (
            ModelVersion.objects.filter(pk=version_id, kind=kind)
            .exclude(status=ModelStatus.LIVE)
            .update(status=ModelStatus.LIVE, promoted_at=now, promoted_by=by, retired_at=None)
        )
    return changed


def promote(version: ModelVersion, *, by: Any = None) -> bool:
    """Make `version` the live one (retiring the one before); False if it already was."""
    user = by if getattr(by, "is_authenticated", False) else None
    try:
        changed = _make_live(version.pk, version.kind, user)
    except IntegrityError:
        changed = _make_live(version.pk, version.kind, user)  # a racing promotion won
    if changed:
        log.info("model %s promoted by %s", version.pk, user or "the training rule")
        transaction.on_commit(request_snapshot_publish)
    version.refresh_from_db()
    return bool(changed)


def previous_live(kind: str = ModelKind.PCTR) -> ModelVersion | None:
    """The version that was live before the current one (the most recently promoted other)."""
    live = ModelVersion.objects.live(kind).first()
    earlier = ModelVersion.objects.filter(kind=kind, promoted_at__isnull=False).exclude(
        status=ModelStatus.LIVE
    )
    if live is not None and live.promoted_at is not None:
        earlier = earlier.filter(promoted_at__lt=live.promoted_at)
    return earlier.order_by("-promoted_at", "-pk").first()


def roll_back(*, by: Any = None, kind: str = ModelKind.PCTR) -> ModelVersion | None:
    """Make the previously live version live again; None when there was none."""
    previous = previous_live(kind)
    if previous is None:
        return None
    promote(previous, by=by)
    return previous
