"""The advertiser's report pages: periods, tables, charts and downloads."""
