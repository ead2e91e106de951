"""Sizes of model files and downloads in words, one way everywhere: "4.7 GB", and "6.2 MB" under a gigabyte (a small
model is not "0.0 GB"). Decimal units, as file managers and the Hub show them."""

from __future__ import annotations

KB, MB, GB = 1e3, 1e6, 1e9


def size_text(n_bytes: float) -> str:
    """`n_bytes` in GB from a gigabyte on, in MB from a megabyte (shown to one decimal, "1000.0 MB" is "1.0 GB")."""
    if round(n_bytes / MB, 1) >= 1000:
        return f"{n_bytes / GB:,.1f} GB"
    if round(n_bytes / KB, 1) >= 1000:
        return f"{n_bytes / MB:.1f} MB"
    return f"{n_bytes / KB:.1f} KB"
