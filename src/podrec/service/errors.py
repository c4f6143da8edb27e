"""Errors the service raises for a request that names what is not there."""


class NotFoundError(LookupError):
    """An id, user or embedding the request names is not in the store."""
