"""The installed llama.cpp is our patched build (the CLS-position fix of the LLaVA image graph)."""

import llama_cpp

from inference.native import patched_build_problem


def test_patched_build_is_installed():
    assert "+huatuo" in llama_cpp.__version__
    assert patched_build_problem() is None
