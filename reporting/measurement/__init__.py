"""Measurement reports over DemandHourly/DemandDaily and the buyer latency histograms."""
