"""Conversions: the signed postback, attribution at ingestion, the store and its reports.

The pixel is serving's (`/v1/conv`, `serving.app`); both doors append `conv` events to the
event stream (`serving.conversions`), and `attribution.attribute_conversions` turns them
into `Conversion` rows exactly once (docs/conversions.md).
"""
