"""The advertiser console: campaigns, line items, creatives, bulksheets and members, in the
dashboard. Views here only translate HTTP to the services (`campaigns.services`,
`creatives.services`, `campaigns.bulk`) and the tenancy rules (`campaigns.organisations`,
`campaigns.api.permissions`); no rule lives in this package twice."""
