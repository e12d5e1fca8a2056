"""The workbench's side of the server: the relay inside Panel's server, the login, the patches.

- :mod:`~workbench.server.runtime`: the process's one relay, started on Panel's loop;
- :mod:`~workbench.server.routes`: its ``/api`` routes in the plain ``panel serve workbench``;
- :mod:`~workbench.server.login`: Panel's login page, checked against the relay's users;
- :mod:`~workbench.server.cookie_auth`: the login cookie as a relay authenticator;
- :mod:`~workbench.server.notifications`: a repair of Panel's toast script.

The app's entry points (``main.py``, ``app_hooks.py``, ``plugin.py``, ``__main__.py``)
stay at the top of the package, where Bokeh and Panel look for them.
"""

# Panel's auth module loads the ``panel.auth`` entry points, the workbench's login
# handler among them, as it is imported.  Importing it here, before any module of
# this package, makes Panel the one that imports ``workbench.server.login``: a test
# or ``python -m workbench`` importing the login module first would otherwise make
# Panel load it half-initialised (an import cycle).
import panel.auth  # noqa: F401
