"""Limits on what serving sends out: the per-process token bucket and circuit breaker
(`serving.limits.local`) and their fleet-wide counterparts shared through Redis
(`serving.limits.fleet`)."""
