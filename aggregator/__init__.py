"""Privacy-preserving registration aggregator for presumed victims of human trafficking."""

__version__ = "0.1.0"
SCHEMA_VERSION = 1
