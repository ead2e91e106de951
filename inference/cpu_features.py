"""The CPU features the llama.cpp build needs, and whether this CPU has them: read without loading llama.cpp.

On a CPU without them the engine process dies of an illegal instruction the moment llama.cpp loads, which
users only see as a crash; the app's start-up check (app/cpu_check.py) and the fit verdicts
(inference/hardware.py) ask here first. This module imports only the standard library, so that check stays
cheap and runs before anything heavy is loaded.

Reads /proc/cpuinfo on Linux, `sysctl` on macOS, and `IsProcessorFeaturePresent` on Windows, which reports
AVX2 but has no flag for the others (every AVX2 processor has them); no third-party package is needed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

# The portable build (native/llama-cpp/build-wheel.sh: CMAKE_ARGS=-DGGML_NATIVE=OFF) is compiled for a fixed
# x86-64 level: with GGML_NATIVE off, ggml's CMakeLists turns on GGML_SSE42, GGML_AVX, GGML_AVX2, GGML_BMI2,
# GGML_FMA and GGML_F16C (and leaves every AVX-512, AVX-VNNI and AMX option off), so the compiler may use any
# of these instructions anywhere in libggml-cpu. The wheel records them in lib/cmake/ggml/ggml-config.cmake,
# and llama_print_system_info() lists them (SSE3 and SSSE3, also listed, come with SSE4.2).
# On other architectures (Apple silicon, ARM Linux) the build targets that architecture's baseline and there is
# nothing to check.
REQUIRED_X86 = ("SSE4.2", "AVX", "AVX2", "FMA", "F16C", "BMI2")
SKIP_ENV = "HUATUO_SKIP_CPU_CHECK"  # for emulators and hypervisors that hide flags the CPU really has

# How /proc/cpuinfo and sysctl spell a feature, where it differs from the names above.
_SPELLINGS = {"SSE4_2": "SSE4.2", "AVX1.0": "AVX"}
# Windows PROCESSOR_FEATURE_ID values (winnt.h).
_PF_AVX2_INSTRUCTIONS_AVAILABLE = 40


def is_x86_64(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in ("x86_64", "amd64", "x64")


def _name(flag: str) -> str:
    flag = flag.upper()
    return _SPELLINGS.get(flag, flag)


def linux_features(cpuinfo: str) -> set[str]:
    """The flags of the first processor in a /proc/cpuinfo text, named as in REQUIRED_X86."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return {_name(flag) for flag in value.split()}
    return set()


def macos_features(sysctl_values: str) -> set[str]:
    """Flags from `sysctl -n machdep.cpu.features machdep.cpu.leaf7_features` (AVX is spelled AVX1.0 there;
    AVX2 and BMI2 sit in the leaf-7 list)."""
    return {_name(flag) for flag in sysctl_values.split()}


def _windows_features() -> set[str] | None:
    import ctypes

    if sys.getwindowsversion().major < 10:  # the AVX2 flag exists from Windows 10 on; older ones answer "no"
        return None
    present = ctypes.windll.kernel32.IsProcessorFeaturePresent
    if present(_PF_AVX2_INSTRUCTIONS_AVAILABLE):
        return set(REQUIRED_X86)  # the others have no flag of their own; every AVX2 CPU has them
    return set()


def cpu_features() -> set[str] | None:
    """The x86 feature flags of this CPU, or None when this platform gives no way to read them."""
    try:
        if sys.platform.startswith("linux"):
            return linux_features(Path("/proc/cpuinfo").read_text(errors="replace"))
        if sys.platform == "darwin":
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                                 capture_output=True, text=True, timeout=5)
            return macos_features(out.stdout) if out.returncode == 0 else None
        if sys.platform == "win32":
            return _windows_features()
    except (OSError, subprocess.SubprocessError, AttributeError):
        return None
    return None


def missing_features(features: set[str] | None = None, machine: str | None = None) -> list[str]:
    """What the llama.cpp build needs and this CPU lacks (empty: fine, nothing to check here, or the check is
    switched off with HUATUO_SKIP_CPU_CHECK=1)."""
    if os.environ.get(SKIP_ENV) == "1" or not is_x86_64(machine):
        return []
    if features is None:
        features = cpu_features()
        if features is None:  # unreadable: do not block a CPU we cannot judge
            return []
    return [name for name in REQUIRED_X86 if name not in features]
