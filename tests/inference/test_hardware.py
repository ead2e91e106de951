"""Fit verdicts from file sizes, context and the machine's real memory and CPU."""

import re
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from inference.cpu_features import REQUIRED_X86, is_x86_64, missing_features
from inference.hardware import assess, kv_cache_bytes, memory_bandwidth_gb_s
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
