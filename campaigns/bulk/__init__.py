"""Bulksheets: campaigns, line items and creative assignments as one CSV (see docs/bulksheets.md).

reader (bytes -> rows) -> plan (the dry run: what would change, every error) -> apply (the
services, all or nothing) and export (the same format back out).
"""
