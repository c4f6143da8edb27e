"""The API's routes, one router per resource. Each route is one small function over explicit
dependencies (server/deps.py: the ``Podrec`` facade, the kept lists, the settings, the
training lock); none reaches below the facade (no store, no private attributes).

- ``service``: /health, /metrics, the web page;
- ``catalog``: /catalog/ingest, /items, /items/{kind}/{id}(/similar), /tags, /catalog/stats;
- ``events``: /events, /events/batch;
- ``recommend``: /recommendations, /users/{id}/recommendations, /search, /onboarding;
- ``users``: /users, /users/{id}/profile, link, export, delete;
- ``models``: /models, /models/train;
- ``reports``: /reports/latest, /reports/files/{path}.
"""

from __future__ import annotations

from podrec.server.routes import catalog, events, models, recommend, reports, service, users

ROUTERS = [service.routes, catalog.routes, events.routes, recommend.routes, users.routes,
           models.routes, reports.routes]
