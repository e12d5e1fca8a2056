"""The analyst workbench: a Panel directory app (``panel serve workbench``) with the relay inside.

Bokeh also executes this file as the app's package, under another name, so it holds nothing.
"""
