"""chromata: responsible, provenance-tracked colorization of photo archives."""

__version__ = "0.1.0"
