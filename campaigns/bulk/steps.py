"""A planned bulksheet: the steps the rows become, and the errors that stop them."""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from campaigns.bulk import columns as cols
from campaigns.bulk.columns import Entity
from campaigns.bulk.columns import Operation as Op
from campaigns.bulk.sheet import RowError

# A database id, or the temporary id ("tmp:boots") of an object the file creates.
Ref = int | str


@dataclass
class Step:
    """One row as it will be applied."""

    row: int
    entity: Entity
    operation: Op
    label: str
    campaign: Ref | None = None
    line_item: Ref | None = None
    creative: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # model attribute -> new value
    status: str = ""  # the status to move to, when it moves
    changes: dict[str, list[str | None]] = field(default_factory=dict)  # column -> [old, new]

    @property
    def changed(self) -> bool:
        return self.operation == Op.CREATE or bool(self.changes)


@dataclass
class Plan:
    rows_total: int
    steps: list[Step]
    errors: list[RowError]

    def summary(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for step in self.steps:
            outcome = step.operation.value if step.changed else "unchanged"
            per_entity = counts.setdefault(step.entity.value, {})
            per_entity[outcome] = per_entity.get(outcome, 0) + 1
        return counts

    def diff(self) -> list[dict[str, Any]]:
        return [
            {
                "row": s.row,
                "entity": s.entity.value,
                "operation": s.operation.value,
                "object": s.label,
                "changes": s.changes,
            }
            for s in self.steps
            if s.changed
        ]


def field_errors(exc: ValidationError, entity: Entity) -> list[tuple[str, str]]:
    """A model's validation errors as (column, message)."""
    if hasattr(exc, "error_dict"):
        return [
            (cols.column_for(entity, name), message)
            for name, messages in exc.message_dict.items()
            for message in messages
        ]
    return [(cols.OWN_ID[entity], message) for message in exc.messages]


def is_temporary(ref: Ref | None) -> bool:
    return isinstance(ref, str) and ref.startswith(cols.TEMP_PREFIX)
