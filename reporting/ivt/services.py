"""Writes of the invalid-traffic area: the thresholds serving holds traffic to."""

import json

from django.conf import settings
from django.db import transaction
from django_redis import get_redis_connection

from reporting.ivt.models import IvtThresholds
from serving.ivt.judge import IvtRules
from serving.keys import RedisKeys


def current_thresholds() -> IvtThresholds:
    """The one thresholds row, made from settings.IVT_RULES the first time."""
    row, _ = IvtThresholds.objects.get_or_create(pk=1, defaults=dict(settings.IVT_RULES))
    return row


def publish_thresholds(row: IvtThresholds) -> None:
    """Hand the saved thresholds to serving (each process reads them within a refresh)."""
    rules = IvtRules.from_mapping(row.as_rules())  # refuses what serving would refuse
    text = json.dumps(rules.as_dict())
    key = RedisKeys(settings.REDIS_KEY_PREFIX).ivt_rules
    transaction.on_commit(lambda: get_redis_connection("default").set(key, text))
