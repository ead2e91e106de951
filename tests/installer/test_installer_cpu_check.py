"""The start-up check of the CPU features the portable llama.cpp build needs (on x86-64: SSE4.2, AVX, AVX2,
FMA, F16C, BMI2)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from app import cpu_check
from inference import cpu_features

HASWELL_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe "
                 "popcnt aes xsave avx f16c rdrand lahf_lm abm bmi1 avx2 smep bmi2 erms invpcid")
# A Sandy Bridge-era CPU: AVX, but neither AVX2 nor FMA nor F16C nor BMI2.
SANDY_BRIDGE_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ssse3 cx16 sse4_1 sse4_2 popcnt aes avx"


def cpuinfo(flags: str) -> str:
    processor = f"processor\t: {{n}}\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
    return processor.format(n=0) + processor.format(n=1)


def test_reads_the_flags_of_a_proc_cpuinfo_text():
    features = cpu_features.linux_features(cpuinfo(HASWELL_FLAGS))
    assert {"SSE4.2", "AVX", "AVX2", "FMA", "F16C", "BMI2"} <= features
    assert cpu_features.missing_features(features, "x86_64") == []
    assert cpu_check.unsupported_cpu_message(features, "x86_64") is None


def test_names_every_missing_feature():
    features = cpu_features.linux_features(cpuinfo(SANDY_BRIDGE_FLAGS))
    assert cpu_features.missing_features(features, "x86_64") == ["AVX2", "FMA", "F16C", "BMI2"]
    message = cpu_check.unsupported_cpu_message(features, "x86_64")
    assert "lacks AVX2, FMA, F16C, BMI2, which" in message
    assert "x86-64 with SSE4.2, AVX, AVX2, FMA, F16C, BMI2" in message
    assert "Images and DICOM files can still be viewed" in message
    assert cpu_features.SKIP_ENV in message


def test_a_cpu_hiding_bmi2_is_refused():
    """The build is compiled with BMI2 (GGML_BMI2): a virtual CPU that reports AVX2 but not BMI2 would crash."""
    features = cpu_features.linux_features(cpuinfo(HASWELL_FLAGS.replace(" bmi2", "")))
    assert "AVX2" in features and "BMI2" not in features
    assert cpu_features.missing_features(features, "x86_64") == ["BMI2"]
    assert "lacks BMI2," in cpu_check.unsupported_cpu_message(features, "x86_64")


def test_reads_macos_sysctl_output():
    # `sysctl -n machdep.cpu.features machdep.cpu.leaf7_features` on an Intel Mac
    out = ("FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFSH DS ACPI MMX FXSR SSE SSE2 "
           "SS HTT TM PBE SSE3 PCLMULQDQ DTES64 MON DSCPL VMX EST TM2 SSSE3 FMA CX16 TPR PDCM SSE4.1 SSE4.2 x2APIC "
           "MOVBE POPCNT AES PCID XSAVE OSXSAVE SEGLIM64 TSCTMR AVX1.0 RDRAND F16C\n"
           "RDWRFSGS TSC_THREAD_OFFSET SGX BMI1 HLE AVX2 SMEP BMI2 ERMS INVPCID RTM FPU_CSDS MPX RDSEED ADX SMAP\n")
    features = cpu_features.macos_features(out)
    assert {"SSE4.2", "AVX", "AVX2", "FMA", "F16C", "BMI2"} <= features
    assert cpu_check.unsupported_cpu_message(features, "x86_64") is None


def test_other_architectures_have_nothing_to_check():
    assert cpu_features.missing_features(set(), "arm64") == []
    assert cpu_features.missing_features(set(), "aarch64") == []
    assert cpu_check.unsupported_cpu_message(set(), "arm64") is None


def test_the_check_can_be_skipped_for_misreporting_virtual_machines(monkeypatch):
    features = cpu_features.linux_features(cpuinfo(SANDY_BRIDGE_FLAGS))
    monkeypatch.setenv(cpu_features.SKIP_ENV, "1")
    assert cpu_features.missing_features(features, "x86_64") == []
    assert cpu_check.unsupported_cpu_message(features, "x86_64") is None


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads /proc/cpuinfo (Linux)")
def test_this_machine_agrees_with_its_own_cpuinfo():
    """The real reader on this machine: its verdict matches the flags the kernel reports."""
    text = Path("/proc/cpuinfo").read_text()
    first = next((line for line in text.splitlines() if line.startswith("flags")), "flags:")
    flags = set(first.partition(":")[2].split())
    kernel_names = {"SSE4.2": "sse4_2", "AVX": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "BMI2": "bmi2"}
    expected = [] if not cpu_features.is_x86_64() else [
        name for name in cpu_features.REQUIRED_X86 if kernel_names[name] not in flags]
    assert cpu_features.missing_features() == expected
    assert (cpu_check.unsupported_cpu_message() is None) == (not expected)
    assert cpu_features.is_x86_64() == (platform.machine().lower() in ("x86_64", "amd64"))


def test_the_check_loads_nothing_heavy():
    """It runs before anything else: only the standard library, never llama.cpp, numpy or Qt."""
    code = ("import sys; from app.cpu_check import unsupported_cpu_message; unsupported_cpu_message(); "
            "print(sorted(m for m in ('llama_cpp', 'numpy', 'psutil', 'gguf', 'PySide6') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
