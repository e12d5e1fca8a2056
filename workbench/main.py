"""The page Bokeh builds for each browser tab of ``panel serve workbench``.

Bokeh runs this file under a fresh module name for every tab, so it only builds
the tab; everything shared lives in ordinary modules imported by absolute name.
"""

import panel as pn

from workbench.shell import Workbench

pn.extension("tabulator", notifications=True)

Workbench().template.servable()
