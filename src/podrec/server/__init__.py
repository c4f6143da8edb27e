"""The REST API and web page (`podrec serve`): a FastAPI app over one ``Podrec`` per worker.

- ``app``: ``create_app(config, database_url)``: state, middleware, error handlers, routers.
- ``routes/``: one router per resource (service, catalog, events, recommend, users, models,
  reports); each route is a small function over the dependencies of ``deps``.
- ``deps``: the dependencies routes take (the facade, kept lists, settings, training lock).
- ``worker``: ``ServedPodrec`` and the one-BLAS-thread rule of request threads.
- ``errors``, ``middleware``: JSON errors naming the field; size limits and metrics.
- ``lists``, ``cache``, ``notify``: kept recommendation lists, and how they learn of changes.
- ``training``: one training at a time over a database, and the retrain schedule.
- ``auth``: API keys (``Authorization: Bearer <key>``), scopes admin and client.
- ``schemas``: request and response bodies (pydantic), the OpenAPI document's models.
- ``commands``: the Typer commands ``serve`` and ``keys``.
"""
