"""``panel serve workbench --plugins workbench.plugin``: Panel's official way to add the relay's routes.

Panel imports this module and appends :data:`ROUTES` to its server's routes.
The plain ``panel serve workbench`` does not need it (the app's hook adds the same
routes, see :mod:`workbench.server.routes`), and the two together do not clash.
"""

from __future__ import annotations

from workbench.server.runtime import relay

ROUTES = relay().routes()
