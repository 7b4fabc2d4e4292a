"""The learning loop: datasets from the telemetry files, the pCTR and pCVR models (`pcvr`),
evaluation, registry."""
