"""Does this CPU run the llama.cpp build the app ships?

The portable build (`GGML_NATIVE=OFF`, see native/llama-cpp/build-wheel.sh) uses AVX2, FMA and F16C on
x86-64. On a CPU without them the engine process dies of an illegal instruction the moment llama.cpp
loads, which users only see as a crash: this check runs first and says what is missing instead.
On other architectures (Apple silicon, ARM Linux) the build targets that architecture's baseline and
there is nothing to check.

Reads /proc/cpuinfo on Linux, `sysctl` on macOS, and `IsProcessorFeaturePresent` on Windows, which reports
AVX2 but has no flag for FMA or F16C (every AVX2 processor has both); no third-party package is needed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

REQUIRED_X86 = ("AVX2", "FMA", "F16C")
SKIP_ENV = "HUATUO_SKIP_CPU_CHECK"  # for emulators and hypervisors that hide flags the CPU really has

# Windows PROCESSOR_FEATURE_ID values (winnt.h).
_PF_AVX2_INSTRUCTIONS_AVAILABLE = 40


def is_x86_64(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in ("x86_64", "amd64", "x64")


def linux_features(cpuinfo: str) -> set[str]:
    """The upper-cased flags of the first processor in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return {flag.upper() for flag in value.split()}
    return set()


def macos_features(sysctl_values: str) -> set[str]:
    """Flags from `sysctl -n machdep.cpu.features machdep.cpu.leaf7_features` (F16C is spelled F16C there,
    AVX2 sits in the leaf-7 list)."""
    return {flag.upper().replace("AVX1.0", "AVX") for flag in sysctl_values.split()}


def _windows_features() -> set[str] | None:
    import ctypes

    if sys.getwindowsversion().major < 10:  # the AVX2 flag exists from Windows 10 on; older ones answer "no"
        return None
    present = ctypes.windll.kernel32.IsProcessorFeaturePresent
    if present(_PF_AVX2_INSTRUCTIONS_AVAILABLE):
        return set(REQUIRED_X86)  # FMA and F16C have no flag of their own; every AVX2 CPU has them
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
    """What the llama.cpp build needs and this CPU lacks (empty: fine, or nothing to check here)."""
    if not is_x86_64(machine):
        return []
    if features is None:
        features = cpu_features()
        if features is None:  # unreadable: do not block a CPU we cannot judge
            return []
    return [name for name in REQUIRED_X86 if name not in features]


def unsupported_cpu_message(features: set[str] | None = None, machine: str | None = None) -> str | None:
    """A message for the user when this CPU cannot run the bundled llama.cpp; None when it can."""
    if os.environ.get(SKIP_ENV) == "1":
        return None
    missing = missing_features(features, machine)
    if not missing:
        return None
    return (
        f"This computer's processor lacks {', '.join(missing)}, which this build of Huatuo Vision needs to run the "
        f"model (x86-64 with {', '.join(REQUIRED_X86)}: Intel since 2013 (Haswell), AMD since 2015 (Excavator)). "
        f"Images and DICOM files can still be viewed, but no question can be answered. A build for this processor "
        f"can be made from source with `native/llama-cpp/build-wheel.sh` and CMAKE_ARGS=\"-DGGML_NATIVE=ON\". "
        f"Set {SKIP_ENV}=1 to skip this check if the processor is misreported (for example inside a virtual machine)."
    )
