"""Ingest: feeds, OPML, catalog dumps and listening events into the store."""
