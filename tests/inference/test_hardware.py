"""Fit verdicts from file sizes, context and the machine's real memory and CPU."""

import re
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from inference.cpu_features import REQUIRED_X86, is_x86_64, missing_features
from inference.hardware import assess, kv_cache_bytes, memory_bandwidth_gb_s
from inference.store.gguf_check import PairInfo, check_folder

MIB = 1024**2
# HuatuoGPT-Vision-7B at Q4_K_M (Qwen2-7B: 28 layers, 4 KV heads of 128) and a 34B text model of 20 GB
# (Yi-1.5-34B: 60 layers, 8 KV heads of 128), both at a 4096-token context.
SEVEN_B = PairInfo(None, None, "qwen2", 4096, 3584, 28, 4, 128, 336, 576, 4_683_000_000, 624_000_000)
THIRTY_FOUR_B = PairInfo(None, None, "llama", 4096, 7168, 60, 8, 128, 336, 576, 20_000_000_000, 0)


def test_kv_cache_sizes_worked_out_by_hand():
    # K and V x layers x KV heads x head size x positions x bytes a value (F16: 2)
    # 7B:  2 x 28 x 4 x 128 x 4096 x 2 = 234,881,024 bytes = 224 MiB
    assert kv_cache_bytes(SEVEN_B, 4096) == 234_881_024 == 224 * MIB
    # 34B: 2 x 60 x 8 x 128 x 4096 x 2 = 1,006,632,960 bytes = 960 MiB
    assert kv_cache_bytes(THIRTY_FOUR_B, 4096) == 1_006_632_960 == 960 * MIB
    # 7B, F32 cache at 32768 positions: 2 x 28 x 4 x 128 x 32768 x 4 = 3,758,096,384 bytes = 3.5 GiB
    assert kv_cache_bytes(SEVEN_B, 32768, bytes_per_value=4) == 3_758_096_384


def test_memory_needed_is_weights_kv_cache_and_compute_buffers():
    fit = assess(SEVEN_B, bandwidth_gb_s=20.0)
    # 4,683,000,000 + 624,000,000 (the two files) + 234,881,024 (KV cache) + 419,430,400 (400 MiB of buffers)
    assert fit.ram_needed_bytes == 5_961_311_424
    assert fit.expected_tokens_per_s == pytest.approx(4.2708, rel=1e-4)  # 20 GB/s over 4.683 GB read a token


def test_a_tiny_model_fits(converted):
    fit = assess(check_folder(converted("qwen2", "original", "Q8_0")))
    assert fit.verdict == "fits" and fit.reasons
    assert fit.ram_needed_bytes < fit.ram_available_bytes


def test_low_bandwidth_makes_a_model_that_fits_slow(converted):
    pair = check_folder(converted("qwen2", "original", "Q8_0"))
    fit = assess(pair, bandwidth_gb_s=2 * pair.text_bytes / 1e9)  # the weights can be read twice a second
    assert fit.verdict == "slow" and fit.expected_tokens_per_s == pytest.approx(2.0)
    assert fit.reasons[0].startswith("about 2.0 tokens/s at most")


def test_a_model_bigger_than_memory_will_not_fit(converted):
    pair = check_folder(converted("qwen2", "original", "Q8_0"))
    huge = replace(pair, text_bytes=psutil.virtual_memory().total * 2)
    fit = assess(huge, bandwidth_gb_s=20.0)
    assert fit.verdict == "won't fit" and "GiB" in fit.reasons[0]


def test_a_34b_on_desktop_bandwidth_is_slow_or_does_not_fit():
    fit = assess(THIRTY_FOUR_B, bandwidth_gb_s=25.0)
    # 20,000,000,000 (weights) + 1,006,632,960 (KV cache) + 419,430,400 (buffers) = 21,426,063,360 = 19.95 GiB
    assert fit.ram_needed_bytes == 21_426_063_360
    assert fit.expected_tokens_per_s == pytest.approx(1.25)  # 25 GB/s over 20 GB read for every token
    if psutil.virtual_memory().total < 21_426_063_360:
        assert fit.verdict == "won't fit"
        assert fit.reasons[0].startswith("needs 20.0 GiB of memory; this machine has")
    else:  # it fits, but at 1.25 tokens/s (or swapping, when too little of the memory is free) it is slow
        assert fit.verdict == "slow"
        assert "tokens/s at most" in fit.reasons[0] or "GiB are free" in fit.reasons[0]


def test_this_machine_runs_the_build():
    assert missing_features() == []
    assert memory_bandwidth_gb_s(size_mb=64, repeats=2) > 0.5


@pytest.mark.skipif(not is_x86_64(), reason="the x86-64 instruction sets of the build")
def test_the_required_features_are_what_the_installed_build_was_compiled_for():
    """The wheel records its build options, and llama.cpp reports the instruction sets libggml-cpu was compiled
    with: both must name exactly the required features (SSE3 and SSSE3 come with SSE4.2)."""
    import llama_cpp

    config = Path(llama_cpp.__file__).parent.parent / "lib" / "cmake" / "ggml" / "ggml-config.cmake"
    options = dict(re.findall(r'set\(GGML_(\w+) "(ON|OFF)"\)', config.read_text())) if config.is_file() else {}
    if options.get("NATIVE") == "ON":
        pytest.skip("a native build (GGML_NATIVE=ON) is made for the CPU it was built on")
    isa = {"SSE42": "SSE4.2", "AVX": "AVX", "AVX2": "AVX2", "FMA": "FMA", "F16C": "F16C", "BMI2": "BMI2",
           "AVX_VNNI": "AVX_VNNI", "AVX512": "AVX512", "AVX512_VBMI": "AVX512_VBMI", "AVX512_VNNI": "AVX512_VNNI",
           "AVX512_BF16": "AVX512_BF16", "AMX_TILE": "AMX_TILE", "AMX_INT8": "AMX_INT8", "AMX_BF16": "AMX_BF16"}
    if options:
        assert {isa[key] for key, value in options.items() if key in isa and value == "ON"} == set(REQUIRED_X86)
    info = llama_cpp.llama_print_system_info().decode()
    compiled = {name for name, on in re.findall(r"(\w+) = (\d)", info) if on == "1" and name in isa.values()}
    assert compiled == set(REQUIRED_X86) - {"SSE4.2"}, info
