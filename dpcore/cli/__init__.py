"""``python -m dpcore``: the headless twin of the dashboard (see :mod:`dpcore.cli.main`)."""

from dpcore.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
