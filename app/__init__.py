"""Huatuo Vision Desktop: the desktop app and the `huatuo` command line."""

import os

# Shown on every answer, on screen and in exports.
INTENDED_USE = "For education and research; not for diagnosis."

# Offline by default: huggingface_hub reads these once, when first imported; the model manager lifts the
# flag only while a download the user started runs (inference.store.downloads.hub_online).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
