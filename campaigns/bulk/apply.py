"""Carrying out a bulksheet through campaigns.services, all or nothing, with a result file."""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from campaigns import services
from campaigns.bulk import columns as cols
from campaigns.bulk.columns import Entity
from campaigns.bulk.columns import Operation as Op
from campaigns.bulk.plan import make_plan
from campaigns.bulk.sheet import RowError, Sheet, SheetError, read, unescape, write
from campaigns.bulk.steps import Plan, Ref, Step, field_errors, is_temporary
from campaigns.models import (
    Advertiser,
    BulkUpload,
    Campaign,
    CampaignStatus,
    LineItem,
    LineItemCreative,
    LineItemStatus,
)
from campaigns.models.bulk import BulkUploadStatus as Status
from creatives.models import Creative

logger = logging.getLogger(__name__)

CHUNK = 2000
PROGRESS_EVERY = 100
PROGRESS_TTL = 24 * 3600
DONE_WORDS = {Op.CREATE: "created", Op.UPDATE: "updated", Op.ARCHIVE: "archived"}
UNEXPECTED = "The apply stopped on an unexpected error; nothing was changed."


class RowFailed(Exception):
    """Rows the services refused; the transaction rolls back."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


@dataclass
class Outcome:
    result: str
    message: str = ""
    ids: dict[str, int] = field(default_factory=dict)  # id column -> the new object's id


def _progress_key(upload_id: int) -> str:
    return f"bulkupload:{upload_id}:rows"


def record_progress(upload_id: int, rows: int) -> None:
    cache.set(_progress_key(upload_id), rows, PROGRESS_TTL)


def rows_processed(upload: BulkUpload) -> int:
    """How far the apply is; kept in the cache while it runs, as its transaction is not visible."""
    if upload.status == Status.RUNNING:
        return int(cache.get(_progress_key(upload.pk)) or 0)
    return upload.rows_processed


def _in_bulk[M: models.Model](queryset: models.QuerySet[M], refs: Iterable[Any]) -> dict[Ref, M]:
    ids = sorted({ref for ref in refs if isinstance(ref, int)})
    found: dict[Ref, M] = {}
    for start in range(0, len(ids), CHUNK):
        found.update(queryset.in_bulk(ids[start : start + CHUNK]))
    return found


def _ref(ref: Ref | None) -> Ref:
    if ref is None:  # pragma: no cover - the plan gives every step the references it needs
        raise ValueError("a step without its reference")
    return ref


class Applier:
    """Runs a plan's steps through the services, in file order, inside the caller's transaction."""

    def __init__(
        self, plan: Plan, advertiser: Advertiser, by: Any, progress: Callable[[int], None]
    ) -> None:
        self.plan, self.advertiser, self.by, self.progress = plan, advertiser, by, progress
        steps = plan.steps
        self.campaigns = _in_bulk(Campaign.objects.all(), (s.campaign for s in steps))
        self.line_items = _in_bulk(
            LineItem.objects.select_related("campaign"), (s.line_item for s in steps)
        )
        self.creatives = _in_bulk(Creative.objects.all(), (s.creative for s in steps))
        self.created: dict[tuple[str, str], int] = {}  # (id column, temporary id) -> new id
        self.outcomes: dict[int, Outcome] = {}

    def run(self) -> dict[int, Outcome]:
        for done, step in enumerate(self.plan.steps, start=1):
            if step.changed:
                outcome = Outcome(DONE_WORDS[step.operation])
                try:
                    self._apply(step, outcome)
                except ValidationError as exc:
                    errors = field_errors(exc, step.entity)
                    raise RowFailed([RowError(step.row, c, m) for c, m in errors]) from exc
            else:
                outcome = Outcome("unchanged")
            self.outcomes[step.row] = outcome
            if done % PROGRESS_EVERY == 0:
                self.progress(done)
        self.progress(len(self.plan.steps))
        return self.outcomes

    def _apply(self, step: Step, outcome: Outcome) -> None:
        if step.entity == Entity.CAMPAIGN:
            self._campaign(step, outcome)
        elif step.entity == Entity.LINE_ITEM:
            self._line_item(step, outcome)
        else:
            self._assignment(step)

    def _campaign(self, step: Step, outcome: Outcome) -> None:
        by = self.by
        if step.operation == Op.CREATE:
            campaign = services.create_campaign(advertiser=self.advertiser, by=by, **step.fields)
            self._created(step.campaign, cols.CAMPAIGN_ID, campaign, self.campaigns, outcome)
        else:
            campaign = self.campaigns[_ref(step.campaign)]
        if step.operation == Op.ARCHIVE:
            services.archive_campaign(campaign, by=by)
        elif step.fields and step.operation == Op.UPDATE:
            services.update_campaign(campaign, by=by, **step.fields)
        if step.status == CampaignStatus.ACTIVE:
            services.activate_campaign(campaign, by=by)
        elif step.status == CampaignStatus.PAUSED:
            services.pause_campaign(campaign, by=by)

    def _line_item(self, step: Step, outcome: Outcome) -> None:
        by = self.by
        if step.operation == Op.CREATE:
            parent = self.campaigns[_ref(step.campaign)]
            line_item = services.create_line_item(campaign=parent, by=by, **step.fields)
            self._created(step.line_item, cols.LINE_ITEM_ID, line_item, self.line_items, outcome)
        else:
            line_item = self.line_items[_ref(step.line_item)]
        if step.operation == Op.ARCHIVE:
            services.archive_line_item(line_item, by=by)
        elif step.fields and step.operation == Op.UPDATE:
            services.update_line_item(line_item, by=by, **step.fields)
        if step.status == LineItemStatus.ACTIVE:
            services.activate_line_item(line_item, by=by)
        elif step.status == LineItemStatus.PAUSED:
            services.pause_line_item(line_item, by=by)

    def _assignment(self, step: Step) -> None:
        line_item = self.line_items[_ref(step.line_item)]
        creative = self.creatives[_ref(step.creative)]
        if step.operation == Op.ARCHIVE:
            assignment = LineItemCreative.objects.select_related("line_item__campaign").get(
                line_item=line_item, creative=creative
            )
            services.unassign_creative(assignment, by=self.by)
        else:
            services.assign_creative(line_item, creative, weight=step.fields["weight"], by=self.by)

    def _created(
        self, ref: Ref | None, column: str, obj: Any, objects: dict[Ref, Any], outcome: Outcome
    ) -> None:
        objects[_ref(ref)] = obj
        outcome.ids[column] = obj.pk
        if is_temporary(ref):
            self.created[(column, str(ref))] = obj.pk
            outcome.message = f"{ref} is {obj.pk}"


def result_csv(
    sheet: Sheet,
    outcomes: dict[int, Outcome],
    created: dict[tuple[str, str], int],
    errors: Iterable[RowError] = (),
) -> str:
    """The uploaded rows with a Result and a Message; new ids replace the temporary ones."""
    messages: dict[int, list[str]] = {}
    for error in errors:
        if error.row is not None:
            text = f"{error.column}: {error.message}" if error.column else error.message
            messages.setdefault(error.row, []).append(text)
    keep = [n for n, h in enumerate(sheet.header) if cols.KNOWN.get(h.lower()) not in cols.IGNORED]
    ids = [n for n, c in enumerate(sheet.columns) if c in (cols.CAMPAIGN_ID, cols.LINE_ITEM_ID)]
    rows = []
    for row, raw in zip(sheet.rows, sheet.raw, strict=True):
        cells = raw + [""] * (len(sheet.header) - len(raw))
        outcome = outcomes.get(row.number) or Outcome("not applied")
        for n in ids:
            column = str(sheet.columns[n])
            new = created.get((column, unescape(cells[n].strip()))) or outcome.ids.get(column)
            cells[n] = str(new) if new else cells[n]
        if row.number in messages:
            outcome = Outcome("error", "; ".join(messages[row.number]))
        rows.append([cells[n] for n in keep] + [outcome.result, outcome.message])
    return write([sheet.header[n] for n in keep] + [cols.RESULT, cols.MESSAGE], rows)


def _finish(upload_id: int, status: Status, errors: list[RowError], result: str = "") -> None:
    BulkUpload.objects.filter(pk=upload_id).update(
        status=status,
        errors=[e.as_dict() for e in errors],
        result_csv=result,
        finished_at=timezone.now(),
    )


def apply_upload(upload: BulkUpload) -> str:
    """Apply a queued upload all or nothing; once it is done, running it again does nothing."""
    claimed = BulkUpload.objects.filter(
        pk=upload.pk, status__in=[Status.QUEUED, Status.RUNNING]
    ).update(status=Status.RUNNING, started_at=timezone.now())
    if not claimed:
        return upload.status
    sheet: Sheet | None = None
    try:
        with transaction.atomic():
            # A second delivery of the task waits on this lock, then finds the upload done.
            locked = BulkUpload.objects.select_for_update().get(pk=upload.pk)
            if locked.status != Status.RUNNING:
                return locked.status
            sheet = read(locked.content)
            # Checked again: the data may have changed since the dry run.
            plan = make_plan(sheet, upload.advertiser)
            if plan.errors:
                raise RowFailed(plan.errors)
            progress = partial(record_progress, upload.pk)
            applier = Applier(plan, upload.advertiser, locked.applied_by, progress)
            outcomes = applier.run()
            locked.status = Status.DONE
            locked.rows_processed = plan.rows_total
            locked.summary = plan.summary()
            locked.result_csv = result_csv(sheet, outcomes, applier.created)
            locked.finished_at = timezone.now()
            locked.save()
            return Status.DONE
    except (RowFailed, SheetError) as failed:
        result = result_csv(sheet, {}, {}, failed.errors) if sheet else ""
        _finish(upload.pk, Status.FAILED, failed.errors, result)
        return Status.FAILED
    except Exception:
        logger.exception("bulk upload %s stopped", upload.pk)
        _finish(upload.pk, Status.ERROR, [RowError(None, "", UNEXPECTED)])
        return Status.ERROR
