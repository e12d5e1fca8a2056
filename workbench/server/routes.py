"""Adding the relay's routes to the Tornado application of a running ``panel serve``.

``panel serve DIR`` offers one official way to add Tornado routes, ``--plugins
MODULE`` (see :mod:`workbench.plugin`), and none from inside the app.  So that
the plain ``panel serve workbench`` carries the relay by itself, the app's
``on_server_loaded`` hook calls :func:`install_relay_routes`: it finds the
:class:`~bokeh.server.tornado.BokehTornado` application that serves this app (the
hook is given only the app's context, so the application is found among live
objects by that context) and adds the routes with Tornado's ``add_handlers``,
whose rules take precedence over the application's own.

This leans on two private details of Bokeh (``BokehTornado._applications``, a
route table of ``ApplicationContext`` objects), which a test pins; if a Bokeh
release changes them the hook says so in the log, and ``--plugins
workbench.plugin`` still works.  Routes that are already there (given with
``--plugins`` or ``pn.serve(extra_patterns=...)``) are not added twice.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

from bokeh.server.tornado import BokehTornado
from tornado.routing import Rule, RuleRouter
from tornado.web import Application

from relay.app import Routes
from relay.tornado.handler import UpgradeHandler


class RoutesNotInstalled(RuntimeError):
    """The Tornado application of this ``panel serve`` could not be found."""


def install_relay_routes(application_context: Any, routes: Routes) -> bool:
    """Add ``routes`` to the application serving ``application_context``; False if already there."""
    application = _application_serving(application_context)
    if application is None:
        raise RoutesNotInstalled(
            "could not find the Tornado application of this Bokeh server to add the relay's /api routes; "
            "start the workbench with `panel serve workbench --plugins workbench.plugin` instead"
        )
    if serves_relay(application):
        return False
    application.add_handlers(r".*", routes)
    return True


def serves_relay(application: Application) -> bool:
    """Whether ``application`` already routes the relay's WebSocket endpoint."""
    return any(rule.target is UpgradeHandler for rule in _rules(application.default_router))


def _application_serving(application_context: Any) -> BokehTornado | None:
    for candidate in gc.get_objects():
        if isinstance(candidate, BokehTornado) and any(
            context is application_context for context in getattr(candidate, "_applications", {}).values()
        ):
            return candidate
    return None


def _rules(router: RuleRouter) -> Iterator[Rule]:
    """Every rule of ``router`` and of the routers nested in it (host rules, the wildcard router)."""
    for rule in router.rules:
        yield rule
        if isinstance(rule.target, RuleRouter):
            yield from _rules(rule.target)
