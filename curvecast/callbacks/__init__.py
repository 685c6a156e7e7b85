"""Sensors: Lightning callbacks that measure a live run and record it into a RunHistory."""

__all__: list[str] = []
