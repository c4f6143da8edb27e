"""Enrich: embeddings and tags for every stored item."""
