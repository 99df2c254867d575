"""Privacy-preserving registration aggregator for presumed victims of human trafficking."""

import os

# pydantic hands every value it validates to the plugins installed in the environment (entry points of the
# `pydantic` group, e.g. telemetry); validation explains failing export rows, names and dates included. No plugin
# may see them, so none is loaded in a process that imports this package (and finding them cost 15 ms a start).
os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"

__version__ = "0.1.0"
SCHEMA_VERSION = 1
