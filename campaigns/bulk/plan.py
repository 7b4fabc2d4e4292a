"""The dry run: what a bulksheet would change, and every row's errors, without writing anything.

The objects the file names are read in a few queries (ids in chunks, never one per row), then
the rows are played in file order on in-memory copies and checked with the models' own
validation, so a row sees the rows above it: a line item on a campaign created three rows up,
or a second edit of one object. `campaigns.bulk.apply` carries the plan out through the
services, which check everything again.
"""

import contextlib
import copy
from collections.abc import Iterator
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import models

from campaigns.bulk import columns as cols
from campaigns.bulk.codecs import CellError
from campaigns.bulk.columns import CAMPAIGN_ID, CREATIVE_ID, LINE_ITEM_ID, STATUS, Entity
from campaigns.bulk.columns import Operation as Op
from campaigns.bulk.sheet import Row, RowError, Sheet
from campaigns.bulk.steps import Plan, Ref, Step, field_errors, is_temporary
from campaigns.models import (
    Advertiser,
    Campaign,
    CampaignStatus,
    LineItem,
    LineItemCreative,
    LineItemStatus,
)
from creatives.models import Creative

MAX_ID = 2**63 - 1
CHUNK = 2000
MAX_WEIGHT = 32767
REQUIRED_ON_CREATE = {
    Entity.CAMPAIGN: ["Name", "Start", "Daily Budget"],
    Entity.LINE_ITEM: ["Name", "Bid", "Sizes"],
}
STATUSES: dict[Entity, list[str]] = {
    Entity.CAMPAIGN: [CampaignStatus.DRAFT, CampaignStatus.ACTIVE, CampaignStatus.PAUSED],
    Entity.LINE_ITEM: [LineItemStatus.ACTIVE, LineItemStatus.PAUSED],
}
PARENT_FIELD = {Entity.CAMPAIGN: "advertiser", Entity.LINE_ITEM: "campaign"}
# The moves campaigns.services allows (it checks them again when the plan is applied).
CAMPAIGN_MOVES = {
    CampaignStatus.ACTIVE: {CampaignStatus.DRAFT, CampaignStatus.PAUSED},
    CampaignStatus.PAUSED: {CampaignStatus.ACTIVE},
    CampaignStatus.DRAFT: {CampaignStatus.DRAFT},
}


class _Skip(Exception):
    """The row has an error that leaves nothing more to check."""


def _chunks(ids: set[int]) -> Iterator[list[int]]:
    ordered = sorted(i for i in ids if i <= MAX_ID)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def _new_label(kind: str, ref: Ref) -> str:
    return f"new {kind} {ref}" if is_temporary(ref) else f"new {kind}"


def _ids(sheet: Sheet, column: str) -> set[int]:
    return {int(v) for row in sheet.rows if (v := row.get(column)).isascii() and v.isdigit()}


class Planner:
    def __init__(self, sheet: Sheet, advertiser: Advertiser) -> None:
        self.sheet, self.advertiser = sheet, advertiser
        self.tz = ZoneInfo(advertiser.time_zone)
        self.errors: list[RowError] = list(sheet.errors)
        self.steps: list[Step] = []
        self.campaigns: dict[Ref, Campaign] = {}
        self.line_items: dict[Ref, LineItem] = {}
        self.parent: dict[Ref, Ref] = {}  # line item -> its campaign
        self.creatives: set[int] = set()
        self.weights: dict[tuple[Ref, int], int] = {}  # (line item, creative) -> weight
        self.temp_rows: dict[tuple[str, str], int] = {}  # (column, temporary id) -> its row

    def plan(self) -> Plan:
        entities = {cols.parse_entity(row.get(cols.ENTITY)) for row in self.sheet.rows}
        missing = sorted(
            {c for e in entities if e for c in cols.ID_COLUMNS[e] if not self.sheet.has(c)}
        )
        if missing:
            names = ", ".join(missing)
            self.errors.append(RowError(1, names, f"Missing columns: {names}."))
            return Plan(len(self.sheet.rows), [], self.errors)
        self._load()
        for row in self.sheet.rows:
            with contextlib.suppress(_Skip):
                self._row(row)
        return Plan(len(self.sheet.rows), self.steps, self.errors)

    def _load(self) -> None:
        org = self.advertiser
        for chunk in _chunks(_ids(self.sheet, CAMPAIGN_ID)):
            for campaign in Campaign.objects.filter(advertiser=org, pk__in=chunk):
                self.campaigns[campaign.pk] = campaign
        for chunk in _chunks(_ids(self.sheet, LINE_ITEM_ID)):
            for li in LineItem.objects.filter(campaign__advertiser=org, pk__in=chunk):
                self.line_items[li.pk] = li
                self.parent[li.pk] = li.campaign_id
        for chunk in _chunks(_ids(self.sheet, CREATIVE_ID)):
            self.creatives.update(
                Creative.objects.filter(advertiser=org, pk__in=chunk).values_list("pk", flat=True)
            )
        for chunk in _chunks({pk for pk in self.line_items if isinstance(pk, int)}):
            for li, creative, weight in LineItemCreative.objects.filter(
                line_item_id__in=chunk
            ).values_list("line_item_id", "creative_id", "weight"):
                self.weights[(li, creative)] = weight

    # Errors

    def _error(self, row: Row, column: str, message: str) -> None:
        self.errors.append(RowError(row.number, column, message))

    def _fail(self, row: Row, column: str, message: str) -> NoReturn:
        self._error(row, column, message)
        raise _Skip

    def _validate(self, row: Row, entity: Entity, obj: models.Model) -> None:
        # The parent is checked by the planner itself; its field would query per row.
        exclude = [PARENT_FIELD[entity]]
        try:
            obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            for column, message in field_errors(exc, entity):
                self._error(row, column, message)

    # Cells

    def _row(self, row: Row) -> None:
        entity = cols.parse_entity(row.get(cols.ENTITY))
        if entity is None:
            names = ", ".join(e.value for e in Entity)
            self._fail(row, cols.ENTITY, f"Unknown entity {row.get(cols.ENTITY)!r} (use {names}).")
        operation = cols.parse_operation(row.get(cols.OPERATION))
        if operation is None:
            message = (
                f"Unknown operation {row.get(cols.OPERATION)!r} (use create, update or archive)."
            )
            self._fail(row, cols.OPERATION, message)
        seen = len(self.errors)
        values = self._values(row, entity, operation)
        status = self._status(row, entity, operation)
        handler = {
            Entity.CAMPAIGN: self._campaign,
            Entity.LINE_ITEM: self._line_item,
            Entity.ASSIGNMENT: self._assignment,
        }[entity]
        step = handler(row, operation, values, status, seen)
        if len(self.errors) == seen:
            self.steps.append(step)

    def _values(self, row: Row, entity: Entity, operation: Op) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if operation == Op.ARCHIVE:
            return values  # an archive reads the ids only
        for header, text in row.cells.items():
            column = cols.FIELDS_BY_HEADER.get(header)
            if column is None or not text:
                continue
            if entity not in column.entities:
                self._error(row, header, f"{header} does not apply to {entity.value} rows.")
            elif text.lower() == cols.REMOVE:
                values[column.attr] = column.removed
            else:
                try:
                    values[column.attr] = column.codec.parse(text, self.tz)
                except CellError as exc:
                    self._error(row, header, str(exc))
        return values

    def _status(self, row: Row, entity: Entity, operation: Op) -> str:
        text = row.get(STATUS).lower()
        if not text or operation == Op.ARCHIVE:
            return ""
        allowed = STATUSES.get(entity)
        if allowed is None:
            self._error(row, STATUS, f"Status does not apply to {entity.value} rows.")
        elif text not in allowed:
            self._error(
                row,
                STATUS,
                f"Unknown status {text!r} (use {', '.join(allowed)}; "
                "to archive, use the archive operation).",
            )
        return text

    def _format(self, entity: Entity, attr: str, value: Any) -> str:
        column = cols.FIELDS_BY_HEADER[cols.column_for(entity, attr)]
        return column.codec.format(value, self.tz)

    def _changes(
        self, entity: Entity, old: models.Model | None, new: dict[str, Any]
    ) -> dict[str, list[str | None]]:
        return {
            cols.column_for(entity, attr): [
                None if old is None else self._format(entity, attr, getattr(old, attr)),
                self._format(entity, attr, value),
            ]
            for attr, value in new.items()
        }

    # References

    def _id(self, row: Row, column: str) -> Ref | None:
        text = row.get(column)
        if not text:
            return None
        if text.startswith(cols.TEMP_PREFIX) and len(text) > len(cols.TEMP_PREFIX):
            return text
        if text.isascii() and text.isdigit():
            return int(text)
        message = f"{text!r} is not an id: give a number, or a temporary id like tmp:boots."
        self._fail(row, column, message)

    def _new(self, row: Row, column: str, kind: str) -> Ref:
        ref = self._id(row, column)
        if ref is None:
            return f"#{row.number}"  # cannot be referred to: not an id, not a temporary id
        if isinstance(ref, int):
            message = f"A new {kind} has no id yet: leave {column} empty or use a temporary id."
            self._fail(row, column, message)
        first = self.temp_rows.setdefault((column, ref), row.number)
        if first != row.number:
            self._fail(row, column, f"The temporary id {ref} is already used on row {first}.")
        return ref

    def _existing[M: models.Model](
        self, row: Row, column: str, objects: dict[Ref, M], kind: str, operation: Op
    ) -> tuple[Ref, M]:
        ref = self._id(row, column)
        if ref is None:
            self._fail(row, column, f"Give the id of the {kind} to {operation.value}.")
        if isinstance(ref, str):
            message = f"To {operation.value} a {kind}, give its id, not a temporary id."
            self._fail(row, column, message)
        if ref not in objects:
            self._fail(row, column, f"{kind.capitalize()} {ref} not found.")
        return ref, objects[ref]

    def _parent[M: models.Model](
        self, row: Row, column: str, objects: dict[Ref, M], kind: str
    ) -> tuple[Ref, M]:
        ref = self._id(row, column)
        if ref is None:
            self._fail(row, column, f"Give the id of the {kind}.")
        if ref not in objects:
            if isinstance(ref, str):
                self._fail(
                    row, column, f"No {kind} with the temporary id {ref} is created above this row."
                )
            self._fail(row, column, f"{kind.capitalize()} {ref} not found.")
        return ref, objects[ref]

    def _same_campaign(self, row: Row, line_item: Ref) -> None:
        given = self._id(row, CAMPAIGN_ID)
        if given is not None and given != self.parent[line_item]:
            self._error(row, CAMPAIGN_ID, f"Line item {line_item} is not in campaign {given}.")

    # Entities

    def _campaign(self, row: Row, op: Op, values: dict[str, Any], status: str, seen: int) -> Step:
        if op == Op.CREATE:
            return self._create_campaign(row, values, status, seen)
        ref, current = self._existing(row, CAMPAIGN_ID, self.campaigns, "campaign", op)
        step = Step(row.number, Entity.CAMPAIGN, op, f'Campaign {ref} "{current.name}"', ref)
        moves = CAMPAIGN_MOVES.get(CampaignStatus(status)) if status else None
        if moves is not None and current.status not in {status, *moves, CampaignStatus.ARCHIVED}:
            message = f"{current.status.capitalize()} campaigns cannot become {status}."
            self._error(row, STATUS, message)
        self.campaigns[ref] = self._edit(row, step, current, values, status, seen)
        if op == Op.ARCHIVE and current.status != CampaignStatus.ARCHIVED:
            # Archiving a campaign archives its line items (campaigns.services does the same).
            for li_ref, campaign in self.parent.items():
                if campaign == ref:
                    self.line_items[li_ref] = copy.copy(self.line_items[li_ref])
                    self.line_items[li_ref].status = LineItemStatus.ARCHIVED
        return step

    def _line_item(self, row: Row, op: Op, values: dict[str, Any], status: str, seen: int) -> Step:
        if op == Op.CREATE:
            return self._create_line_item(row, values, status, seen)
        ref, current = self._existing(row, LINE_ITEM_ID, self.line_items, "line item", op)
        self._same_campaign(row, ref)
        label = f'Line item {ref} "{current.name}"'
        step = Step(row.number, Entity.LINE_ITEM, op, label, self.parent[ref], ref)
        self.line_items[ref] = self._edit(row, step, current, values, status, seen)
        return step

    def _edit[M: (Campaign, LineItem)](
        self, row: Row, step: Step, current: M, values: dict[str, Any], status: str, seen: int
    ) -> M:
        """A checked copy of the object with the row's changed fields and status move."""
        new = copy.copy(current)
        if step.operation == Op.ARCHIVE:
            status = CampaignStatus.ARCHIVED
        step.fields = {k: v for k, v in values.items() if getattr(current, k) != v}
        step.status = status if status != current.status else ""
        if not (step.fields or step.status):
            return new
        if current.status == CampaignStatus.ARCHIVED:
            kind = step.entity.label.lower()
            self._fail(row, cols.OWN_ID[step.entity], f"An archived {kind} cannot be changed.")
        for attr, value in step.fields.items():
            setattr(new, attr, value)
        if step.fields and len(self.errors) == seen:
            self._validate(row, step.entity, new)
        step.changes = self._changes(step.entity, current, step.fields)
        if step.status:
            step.changes[STATUS] = [current.status, step.status]
            new.status = step.status
        return new

    def _create_campaign(self, row: Row, values: dict[str, Any], status: str, seen: int) -> Step:
        ref = self._new(row, CAMPAIGN_ID, "campaign")
        label = _new_label("campaign", ref)
        step = Step(row.number, Entity.CAMPAIGN, Op.CREATE, label, ref, fields=values)
        for header in REQUIRED_ON_CREATE[Entity.CAMPAIGN]:
            if not row.get(header):
                self._error(row, header, "Required to create a campaign.")
        if status == CampaignStatus.PAUSED:
            self._error(row, STATUS, "A new campaign is a draft: it cannot become paused.")
        new = Campaign(
            advertiser=self.advertiser, **{"currency": self.advertiser.currency, **values}
        )
        # Registered even when invalid, so rows below that use it report their own errors only.
        self.campaigns[ref] = new
        if len(self.errors) == seen:
            self._validate(row, Entity.CAMPAIGN, new)
        step.changes = self._changes(Entity.CAMPAIGN, None, values)
        if status == CampaignStatus.ACTIVE:
            step.status = new.status = CampaignStatus.ACTIVE
            step.changes[STATUS] = [None, status]
        return step

    def _create_line_item(self, row: Row, values: dict[str, Any], status: str, seen: int) -> Step:
        campaign_ref, campaign = self._parent(row, CAMPAIGN_ID, self.campaigns, "campaign")
        if campaign.status == CampaignStatus.ARCHIVED:
            self._error(row, CAMPAIGN_ID, "The campaign is archived.")
        ref = self._new(row, LINE_ITEM_ID, "line item")
        label = _new_label("line item", ref)
        step = Step(
            row.number, Entity.LINE_ITEM, Op.CREATE, label, campaign_ref, ref, fields=values
        )
        for header in REQUIRED_ON_CREATE[Entity.LINE_ITEM]:
            if not row.get(header):
                self._error(row, header, "Required to create a line item.")
        new = LineItem(**values)
        self.line_items[ref] = new
        self.parent[ref] = campaign_ref
        if len(self.errors) == seen:
            self._validate(row, Entity.LINE_ITEM, new)
        step.changes = self._changes(Entity.LINE_ITEM, None, values)
        if status == LineItemStatus.PAUSED:
            step.status = new.status = LineItemStatus.PAUSED
            step.changes[STATUS] = [None, status]
        return step

    def _assignment(self, row: Row, op: Op, values: dict[str, Any], status: str, seen: int) -> Step:
        li_ref, _ = self._parent(row, LINE_ITEM_ID, self.line_items, "line item")
        creative = self._id(row, CREATIVE_ID)
        if creative is None:
            self._fail(row, CREATIVE_ID, "Give the id of the creative.")
        if not isinstance(creative, int) or creative not in self.creatives:
            self._fail(row, CREATIVE_ID, f"Creative {creative} not found.")
        self._same_campaign(row, li_ref)
        key = (li_ref, creative)
        label = f"creative {creative} on line item {li_ref}"
        step = Step(row.number, Entity.ASSIGNMENT, op, label, self.parent[li_ref], li_ref, creative)
        weight = values.get("weight")
        if weight is not None and not 1 <= weight <= MAX_WEIGHT:
            self._fail(row, "Weight", f"The weight is a whole number from 1 to {MAX_WEIGHT}.")
        old = self.weights.get(key)
        if op == Op.CREATE and old is not None:
            message = f"Creative {creative} is already on line item {li_ref}; update its weight."
            self._fail(row, CREATIVE_ID, message)
        if op != Op.CREATE and old is None:
            message = f"Creative {creative} is not assigned to line item {li_ref}."
            self._fail(row, CREATIVE_ID, message)
        if op == Op.ARCHIVE:
            del self.weights[key]
            step.changes = {"Weight": [str(old), None]}
            return step
        new = weight if weight is not None else old or 1
        if new != old:
            self.weights[key] = new
            step.fields = {"weight": new}
            step.changes = {"Weight": [None if old is None else str(old), str(new)]}
        return step


def make_plan(sheet: Sheet, advertiser: Advertiser) -> Plan:
    """The dry run of a sheet for one organisation: every change and every error."""
    return Planner(sheet, advertiser).plan()
