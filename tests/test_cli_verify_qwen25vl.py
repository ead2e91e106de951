"""`huatuo verify` on a Qwen2.5-VL model: the manifest's family chooses transformers' Qwen2.5-VL as the reference,
and the model manager shows the result as for every model."""

import shutil
import subprocess
import sys

from inference.store.manifest import Manifest
from inference.store.models import InstalledModel


def test_verify_uses_the_qwen25vl_reference_and_the_model_manager_shows_it(qwen25vl_checkpoint, qwen25vl_converted,
                                                                           tmp_path):
    from app.ui.model_details import quality_text

    folder = tmp_path / "qwen"
    shutil.copytree(qwen25vl_converted, folder)
    model = InstalledModel(folder, Manifest.read(folder))
    assert quality_text(model).startswith("Quality: not verified")

    done = subprocess.run([sys.executable, "-m", "app", "verify", str(qwen25vl_checkpoint), str(folder)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "two-image follow-up  identical" in done.stdout  # only the Qwen2.5-VL reference checks a follow-up
    assert "greedy generation    identical" in done.stdout and done.stdout.rstrip().endswith("PASSED")

    text = quality_text(model)
    assert text.startswith("Quality: passed (huatuo verify, ") and "text F32, projector F32" in text
    assert "KL divergence, mean (nats/token): " in text and "image embedding cosine, min" in text
    assert "FAIL" not in text
