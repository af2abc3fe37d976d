"""Benchmarks P1-P6 of the export system; run them with ``python -m bench`` (see README.md)."""
