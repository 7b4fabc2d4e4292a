"""Benchmarks; run them as scripts (see README.md)."""
