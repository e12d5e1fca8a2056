"""Vigil Relay: live camera feeds to ML services and analysts, alerts back."""

__version__ = "0.1.0"
