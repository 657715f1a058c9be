"""The embedded lab of ``difpipe demo``: in-process SSH hosts on 127.0.0.1 with sample data."""

from .lab import DEMO_USER, HOSTS, DemoHost, DemoLab

__all__ = ["DEMO_USER", "HOSTS", "DemoHost", "DemoLab"]
