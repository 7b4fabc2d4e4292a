"""Pacing services: the controller's tick, the reconciliation of Redis with the rollups, and
each campaign's pacing state (API, admin, reports). Every function takes `now`: the Celery
tasks pass the wall clock, the simulator its compressed one.

The day's targets are in `targets`, the tick in `tick`, the reconciliation in `reconcile`,
the pacing state in `state`.
"""

from campaigns.pacing.services.reconcile import ReconcileResult, reconcile_spend
from campaigns.pacing.services.state import ChartPoint, campaign_pacing, spend_against_schedule
from campaigns.pacing.services.targets import (
    days_left,
    goal_target,
    ledger,
    line_item_target,
    live_campaigns,
    schedule_for,
    spend_target,
)
from campaigns.pacing.services.tick import PacingRun, run_pacing

__all__ = [
    "ChartPoint",
    "PacingRun",
    "ReconcileResult",
    "campaign_pacing",
    "days_left",
    "goal_target",
    "ledger",
    "line_item_target",
    "live_campaigns",
    "reconcile_spend",
    "run_pacing",
    "schedule_for",
    "spend_against_schedule",
    "spend_target",
]
