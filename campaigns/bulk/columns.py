"""The bulksheet's columns: which entity each applies to, its model field and its encoding."""

from dataclasses import dataclass
from typing import Any

from django.db import models

from campaigns.bulk import codecs as c
from campaigns.models import (
    BidStrategy,
    BidType,
    CreativeRotation,
    GoalType,
    PacingMode,
    PriorityTier,
)


class Entity(models.TextChoices):
    CAMPAIGN = "Campaign", "Campaign"
    LINE_ITEM = "Line Item", "Line item"
    ASSIGNMENT = "Creative Assignment", "Creative assignment"


class Operation(models.TextChoices):
    CREATE = "create", "Create"
    UPDATE = "update", "Update"
    ARCHIVE = "archive", "Archive"  # for a creative assignment: unassign


ENTITY = "Entity"
OPERATION = "Operation"
CAMPAIGN_ID = "Campaign Id"
LINE_ITEM_ID = "Line Item Id"
CREATIVE_ID = "Creative Id"
STATUS = "Status"
# Written into the result file; read back as nothing, so a result file can be uploaded again.
RESULT = "Result"
MESSAGE = "Message"

# A cell holding this empties the field (a blank cell leaves it unchanged).
REMOVE = "[remove]"
TEMP_PREFIX = "tmp:"

CAMPAIGN, LINE_ITEM, ASSIGNMENT = Entity.CAMPAIGN, Entity.LINE_ITEM, Entity.ASSIGNMENT


@dataclass(frozen=True)
class Column:
    header: str
    attr: str
    codec: c.Codec
    entities: frozenset[Entity]
    # What REMOVE sets: None for nullable fields, an empty list or text otherwise.
    removed: Any = None


def _col(header: str, attr: str, codec: c.Codec, *entities: Entity, removed: Any = None) -> Column:
    return Column(header, attr, codec, frozenset(entities), removed)


TEXT, DECIMAL, DATETIME = c.Text(), c.DecimalCodec(), c.DateTime()
STRINGS, UPPER_STRINGS = c.StringList(), c.StringList("upper")
PACING, TIER = c.Choice(PacingMode, "pacing mode"), c.Choice(PriorityTier, "priority tier")
GOAL, BID_TYPE = c.Choice(GoalType, "goal type"), c.Choice(BidType, "bid type")
STRATEGY = c.Choice(BidStrategy, "bid strategy")
ROTATION = c.Choice(CreativeRotation, "creative rotation")

FIELD_COLUMNS = [
    _col("Name", "name", TEXT, CAMPAIGN, LINE_ITEM, removed=""),
    _col("Start", "start_at", DATETIME, CAMPAIGN),
    _col("End", "end_at", DATETIME, CAMPAIGN),
    _col("Currency", "currency", c.UpperText(), CAMPAIGN, removed=""),
    _col("Daily Budget", "daily_budget", DECIMAL, CAMPAIGN, LINE_ITEM),
    _col("Lifetime Budget", "lifetime_budget", DECIMAL, CAMPAIGN, LINE_ITEM),
    _col("Pacing Mode", "pacing_mode", PACING, CAMPAIGN, removed=""),
    _col("Priority Tier", "priority_tier", TIER, CAMPAIGN, removed=""),
    _col("Goal Type", "goal_type", GOAL, CAMPAIGN, removed=""),
    _col("Goal Target", "goal_target", DECIMAL, CAMPAIGN),
    _col("Post-Click Days", "post_click_days", c.Integer(), CAMPAIGN),
    _col("Post-View Days", "post_view_days", c.Integer(), CAMPAIGN),
    _col("Bid Type", "bid_type", BID_TYPE, LINE_ITEM, removed=""),
    _col("Bid", "bid", DECIMAL, LINE_ITEM),
    _col("Bid Strategy", "bid_strategy", STRATEGY, LINE_ITEM, removed=""),
    _col("Min Bid", "min_bid", DECIMAL, LINE_ITEM),
    _col("Creative Rotation", "creative_rotation", ROTATION, LINE_ITEM, removed=""),
    _col("Sizes", "sizes", STRINGS, LINE_ITEM, removed=[]),
    _col("Countries", "countries", UPPER_STRINGS, LINE_ITEM, removed=[]),
    _col("Regions", "regions", UPPER_STRINGS, LINE_ITEM, removed=[]),
    _col("Device Types", "device_types", c.IntegerList(), LINE_ITEM, removed=[]),
    _col("Channels", "channels", c.StringList("lower"), LINE_ITEM, removed=[]),
    _col("Properties", "properties", STRINGS, LINE_ITEM, removed=[]),
    _col("Keywords", "keywords", STRINGS, LINE_ITEM, removed=[]),
    _col("Negative Keywords", "negative_keywords", STRINGS, LINE_ITEM, removed=[]),
    _col("Segments", "segments", STRINGS, LINE_ITEM, removed=[]),
    _col("Categories", "categories", UPPER_STRINGS, LINE_ITEM, removed=[]),
    _col("Child Safe", "child_safe", c.YesNo(), LINE_ITEM, removed=False),
    _col("Frequency Caps", "frequency_caps", c.FrequencyCaps(), LINE_ITEM, removed=[]),
    _col("Dayparts", "dayparts", c.Dayparts(), LINE_ITEM, removed=[]),
    _col("Click URL", "click_url", TEXT, LINE_ITEM, removed=""),
    _col("Weight", "weight", c.Integer(), ASSIGNMENT),
]
FIELDS_BY_HEADER = {col.header: col for col in FIELD_COLUMNS}

# The order of an export, and of the documentation.
HEADERS = [
    ENTITY,
    OPERATION,
    CAMPAIGN_ID,
    LINE_ITEM_ID,
    CREATIVE_ID,
    FIELD_COLUMNS[0].header,
    STATUS,
    *(col.header for col in FIELD_COLUMNS[1:]),
]
KNOWN = {h.lower(): h for h in [*HEADERS, RESULT, MESSAGE]}
IGNORED = {RESULT, MESSAGE}
REQUIRED = [ENTITY, OPERATION]
# The id columns a row of each entity reads, so the header must have them.
ID_COLUMNS = {
    CAMPAIGN: [CAMPAIGN_ID],
    LINE_ITEM: [CAMPAIGN_ID, LINE_ITEM_ID],
    ASSIGNMENT: [LINE_ITEM_ID, CREATIVE_ID],
}
# The column that names the object a row is about; errors about the row as a whole go there.
OWN_ID = {CAMPAIGN: CAMPAIGN_ID, LINE_ITEM: LINE_ITEM_ID, ASSIGNMENT: CREATIVE_ID}


def column_for(entity: Entity, field: str) -> str:
    """The column a model field of an entity is edited in (for its validation errors)."""
    for col in FIELD_COLUMNS:
        if col.attr == field and entity in col.entities:
            return col.header
    return {
        "status": STATUS,
        "campaign": CAMPAIGN_ID,
        "line_item": LINE_ITEM_ID,
        "creative": CREATIVE_ID,
    }.get(field, OWN_ID[entity])


ENTITIES = {e.value.lower(): e for e in Entity}
OPERATIONS = {o.value: o for o in Operation}


def parse_entity(text: str) -> Entity | None:
    return ENTITIES.get(text.lower())


def parse_operation(text: str) -> Operation | None:
    return OPERATIONS.get(text.lower())
