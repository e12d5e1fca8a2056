"""Alert history leaving the relay: exports (Parquet, CSV, JSON) and reports."""
