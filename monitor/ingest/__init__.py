"""Feed ingest: fetching, parsing and entry identity."""
