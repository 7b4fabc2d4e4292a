"""The learning loop: datasets from the telemetry files, the pCTR model, evaluation, registry."""
