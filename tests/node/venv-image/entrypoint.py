#!/opt/bespoke/bin/python
"""Runs the console script this file is named after, from the mounted virtualenv's metadata."""

import sys
from importlib.metadata import entry_points
from pathlib import Path

name = Path(sys.argv[0]).name
(script,) = entry_points(group="console_scripts", name=name)
sys.exit(script.load()())
