"""Pacing (issue #7; docs/pacing.md): the controller's tick and the beat duties' leases.

The beat entries themselves are in `adsplatform.settings.tasks`.
"""

from adsplatform.settings.base import env

# The controller's tick: each live campaign's pass-through rate, dynamic bid multipliers and
# the day's caps. A tick that waited longer than its period in the queue is dropped.
PACING_EVERY_SECONDS = env.float("PACING_EVERY_SECONDS", default=2.0)
# Each beat duty that must not run twice at once (the pacing tick, the reconciliation, the
# retention purge, ingestion) holds a lease this short, renewed while it works
# (reporting/lease.py): two beat schedulers may run, and a holder that dies frees it within
# seconds instead of stopping pacing until a long lock times out.
PACING_LOCK_SECONDS = env.float("PACING_LOCK_SECONDS", default=5.0)
