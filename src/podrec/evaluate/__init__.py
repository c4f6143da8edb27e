"""Offline evaluation against real data."""
