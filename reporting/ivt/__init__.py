"""Invalid-traffic reporting and operations (issue 18).

Serving records invalid impressions and clicks with their reason (`serving.ivt`); ingestion
keeps them out of everything billed and counts them here (`rollup`), per hour, placement,
line item and reason. Ad ops read the rules that fired in admin and adjust the thresholds
there (`models.IvtThresholds`, published to serving by `services`); staff refund a
placement's or a pseudonym's events for a time window (`refunds`); a CTR far above a
placement's norm is flagged for review (`review`). The API is `GET /api/v1/reports/ivt`.
"""
