"""``schedcore web``: a dashboard and a JSON API for any schedcore store.

Standalone: ``schedcore web --store redis --redis-url redis://...`` (waitress serves it).
Embedded in an existing Flask app, like rq-dashboard's blueprint::

    from schedcore import Scheduler
    from schedcore_web import WebConfig, create_blueprint

    app.register_blueprint(create_blueprint(Scheduler(store=store), WebConfig(read_only=True)),
                           url_prefix="/schedcore")

It talks to the store only through the :class:`~schedcore.protocols.Store` protocol and the
:class:`~schedcore.Scheduler` API. See docs/web.md.
"""

from __future__ import annotations

from schedcore_web._app import WebConfig, create_app, create_blueprint
from schedcore_web._data import Activity
from schedcore_web._security import Auth

__all__ = ["Activity", "Auth", "WebConfig", "create_app", "create_blueprint"]
