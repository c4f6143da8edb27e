"""Listener interest profiles: clustered, decaying, context-aware (see model/profile.py)."""
