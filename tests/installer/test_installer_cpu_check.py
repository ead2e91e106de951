"""The start-up check of the CPU features the portable llama.cpp build needs (AVX2, FMA, F16C on x86-64)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from app import cpu_check

HASWELL_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe "
                 "popcnt aes xsave avx f16c rdrand lahf_lm abm bmi1 avx2 smep bmi2 erms invpcid")
# A Sandy Bridge-era CPU: AVX, but neither AVX2 nor FMA nor F16C.
SANDY_BRIDGE_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ssse3 cx16 sse4_1 sse4_2 popcnt aes avx"


def cpuinfo(flags: str) -> str:
    processor = f"processor\t: {{n}}\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
    return processor.format(n=0) + processor.format(n=1)


def test_reads_the_flags_of_a_proc_cpuinfo_text():
    features = cpu_check.linux_features(cpuinfo(HASWELL_FLAGS))
    assert {"AVX2", "FMA", "F16C", "AVX"} <= features
    assert cpu_check.missing_features(features, "x86_64") == []


def test_names_every_missing_feature():
    features = cpu_check.linux_features(cpuinfo(SANDY_BRIDGE_FLAGS))
    assert cpu_check.missing_features(features, "x86_64") == ["AVX2", "FMA", "F16C"]
    message = cpu_check.unsupported_cpu_message(features, "x86_64")
    assert "AVX2, FMA, F16C" in message
    assert "Images and DICOM files can still be viewed" in message
    assert cpu_check.SKIP_ENV in message


def test_reads_macos_sysctl_output():
    # `sysctl -n machdep.cpu.features machdep.cpu.leaf7_features` on an Intel Mac
    out = ("FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFSH DS ACPI MMX FXSR SSE SSE2 "
           "SS HTT TM PBE SSE3 PCLMULQDQ DTES64 MON DSCPL VMX EST TM2 SSSE3 FMA CX16 TPR PDCM SSE4.1 SSE4.2 x2APIC "
           "MOVBE POPCNT AES PCID XSAVE OSXSAVE SEGLIM64 TSCTMR AVX1.0 RDRAND F16C\n"
           "RDWRFSGS TSC_THREAD_OFFSET SGX BMI1 HLE AVX2 SMEP BMI2 ERMS INVPCID RTM FPU_CSDS MPX RDSEED ADX SMAP\n")
    features = cpu_check.macos_features(out)
    assert {"AVX", "AVX2", "FMA", "F16C"} <= features
    assert cpu_check.unsupported_cpu_message(features, "x86_64") is None


def test_other_architectures_have_nothing_to_check():
    assert cpu_check.missing_features(set(), "arm64") == []
    assert cpu_check.missing_features(set(), "aarch64") == []
    assert cpu_check.unsupported_cpu_message(set(), "arm64") is None


def test_the_check_can_be_skipped_for_misreporting_virtual_machines(monkeypatch):
    features = cpu_check.linux_features(cpuinfo(SANDY_BRIDGE_FLAGS))
    monkeypatch.setenv(cpu_check.SKIP_ENV, "1")
    assert cpu_check.unsupported_cpu_message(features, "x86_64") is None


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads /proc/cpuinfo (Linux)")
def test_this_machine_agrees_with_its_own_cpuinfo():
    """The real reader on this machine: its verdict matches the flags the kernel reports."""
    flags = cpu_check.linux_features(Path("/proc/cpuinfo").read_text())
    expected = [] if not cpu_check.is_x86_64() else [f for f in cpu_check.REQUIRED_X86 if f not in flags]
    assert cpu_check.missing_features() == expected
    assert (cpu_check.unsupported_cpu_message() is None) == (not expected)
    assert cpu_check.is_x86_64() == (platform.machine().lower() in ("x86_64", "amd64"))
