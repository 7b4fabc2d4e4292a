"""Log-level telemetry: the event stream written as Parquet files (docs/telemetry.md)."""
