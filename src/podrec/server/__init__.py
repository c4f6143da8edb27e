"""The REST API and web page (`podrec serve`): a FastAPI app over one ``Podrec`` per worker.

- ``app``: ``create_app(config, database_url)``, the routes, errors, size limits, metrics.
- ``auth``: API keys (``Authorization: Bearer <key>``), scopes admin and client.
- ``schemas``: request and response bodies (pydantic), the OpenAPI document's models.
- ``commands``: the Typer commands ``serve`` and ``keys``.
"""
