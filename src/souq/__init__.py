"""Souq: a multi-vendor marketplace payments backend with Stripe Connect."""

__version__ = "0.1.0"
