"""jaif: platform software for a European AI Factory."""

__version__ = "0.1.0"
