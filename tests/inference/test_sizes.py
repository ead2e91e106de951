"""Model sizes in words: a unit that fits, the same everywhere they are written."""

from __future__ import annotations

from inference.sizes import size_text


def test_a_size_is_written_in_the_unit_that_fits():
    assert size_text(6.2e6) == "6.2 MB"  # a small model: never "0.0 GB"
    assert size_text(999.9e6) == "999.9 MB"
    assert size_text(999.96e6) == "1.0 GB"  # not "1000.0 MB"
    assert size_text(4.683e9) == "4.7 GB"
    assert size_text(15.2e9) == "15.2 GB"
    assert size_text(1_234.5e9) == "1,234.5 GB"
    assert size_text(512_000) == "512.0 KB"
    assert size_text(0) == "0.0 KB"
