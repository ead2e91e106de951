"""Does this CPU run the llama.cpp build the app ships? What to tell the user when it does not.

Runs first, before llama.cpp is ever loaded (`huatuo`, the main window, the self-test): on a CPU without the
features the build needs, llama.cpp dies of an illegal instruction, which users would only see as a crash.
Which features those are, and how they are read, is `inference.cpu_features`; like it, this module imports
only the standard library.
"""

from __future__ import annotations

from inference.cpu_features import REQUIRED_X86, SKIP_ENV, missing_features


def unsupported_cpu_message(features: set[str] | None = None, machine: str | None = None) -> str | None:
    """A message for the user when this CPU cannot run the bundled llama.cpp; None when it can."""
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
