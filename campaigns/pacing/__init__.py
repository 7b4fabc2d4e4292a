"""Budget pacing: the controller, the reconciliation of spend with the rollups, and the
pacing state ad ops and advertisers see (docs/pacing.md)."""
