"""Limits on what serving does and sends out, held for the whole fleet of serving processes:
the per-key request rate limit (`serving.limits.ratelimit`), buyers' QPS caps and circuit
breakers (`serving.limits.fleet`), and each process's own token bucket and breaker
(`serving.limits.local`)."""
