"""Invalid-traffic reporting and operations (issue 18).

Serving records invalid impressions and clicks with their reason (`serving.ivt`); ingestion
keeps them out of everything billed and counts them here (`rollup`), per hour, placement,
line item and reason. Ad ops read the rules that fired in admin and adjust the thresholds
there (`models.IvtThresholds`, published to serving by `services`); staff refund a
placement's or a pseudonym's events for a time window (`refunds`), and a pseudonym serving
held over its limits is refunded so automatically; billed events judged invalid after the
fact leave every billed rollup (`unbill`: refunds, and pixel-stuffed impressions taken back
by serving); data-subject requests reach the refunds' pseudonyms (`privacy`); a CTR far above
a placement's norm is flagged for review (`review`). The API is `GET /api/v1/reports/ivt`.
"""
