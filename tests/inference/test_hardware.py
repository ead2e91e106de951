"""Fit verdicts from file sizes, context and the machine's real memory and CPU."""

from dataclasses import replace

import psutil

from inference.hardware import assess, kv_cache_bytes, memory_bandwidth_gb_s, missing_cpu_features
from inference.store.gguf_check import check_folder


def test_kv_cache_of_the_7b_at_4096_tokens():
    from inference.store.gguf_check import PairInfo

    seven_b = PairInfo(None, None, "qwen2", 4096, 3584, 28, 4, 128, 336, 576, 4_683_000_000, 624_000_000)
    assert kv_cache_bytes(seven_b, 4096) == 2 * 28 * 4096 * 4 * 128 * 2  # 224 MiB at F16


def test_a_tiny_model_fits(converted):
    fit = assess(check_folder(converted("qwen2", "original", "Q8_0")))
    assert fit.verdict == "fits" and fit.reasons
    assert fit.ram_needed_bytes < fit.ram_available_bytes


def test_a_model_bigger_than_memory_will_not_fit(converted):
    pair = check_folder(converted("qwen2", "original", "Q8_0"))
    huge = replace(pair, text_bytes=psutil.virtual_memory().total * 2)
    fit = assess(huge, bandwidth_gb_s=20.0)
    assert fit.verdict == "won't fit" and "GiB" in fit.reasons[0]


def test_a_34b_on_desktop_bandwidth_is_slow(converted):
    pair = check_folder(converted("qwen2", "original", "Q8_0"))
    big = replace(pair, text_bytes=20 * 10**9, mmproj_bytes=0)
    fit = assess(big, bandwidth_gb_s=25.0)
    if fit.verdict != "won't fit":  # on machines with more than ~20 GB free
        assert fit.verdict == "slow" and fit.expected_tokens_per_s < 3


def test_this_machine_runs_the_build():
    assert missing_cpu_features() == []
    assert memory_bandwidth_gb_s(size_mb=64, repeats=2) > 0.5
