"""Downloads through huggingface_hub from a local imitation of the Hub (tests/fake_hub.py) with a real tiny GGUF
pair: complete, resumed after a dropped connection, corrupted, cancelled, stalled, and offline by default."""

from __future__ import annotations

import math
import socket
import threading
import time

import pytest
from huggingface_hub import constants as hub_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import OfflineModeIsEnabled

from inference.cancellation import Cancelled
from inference.store.downloads import RETRY_WAIT_S, DownloadError, PairSpec, download_checkpoint, download_pair
from inference.store.gguf_check import check_folder
from inference.store.manifest import Manifest
from inference.store.models import installed_models
from tests.support.fake_hub import Fault, fake_hub  # noqa: F401 (fixture)
from tests.support.network_guard import NetworkAccessBlocked, no_network  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("no_network")
REPO = "huatuo-test/tiny-gguf"


@pytest.fixture
def pair(converted):
    """The converted tiny model's two files."""
    folder = converted("qwen2", "original", "F32")
    manifest = Manifest.read(folder)
    return folder, manifest


@pytest.fixture
def hub(fake_hub, pair):  # noqa: F811 (the fixture above)
    folder, manifest = pair
    fake_hub.add_repo(REPO, {f"gguf/{m.file}": folder / m.file for m in (manifest.text, manifest.mmproj)})
    return fake_hub


@pytest.fixture
def spec(pair):
    _, manifest = pair
    return PairSpec(REPO, f"gguf/{manifest.text.file}", f"gguf/{manifest.mmproj.file}", name="Tiny Huatuo")


def test_a_complete_download_becomes_an_installed_model(hub, spec, pair, tmp_path, monkeypatch):
    _, source = pair
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # as the app starts
    seen = []
    folder = download_pair(spec, tmp_path / "models" / "tiny", progress=lambda done, total: seen.append((done, total)),
                           endpoint=hub.endpoint)
    models, problems = installed_models(tmp_path / "models")
    assert problems == [] and [m.folder for m in models] == [folder]
    manifest = models[0].manifest
    assert manifest.name == "Tiny Huatuo" and manifest.source["revision"] == hub.commits[REPO]
    assert (manifest.text.sha256, manifest.mmproj.sha256) == (source.text.sha256, source.mmproj.sha256)
    assert (manifest.text.quantization, manifest.mmproj.quantization) == ("F32", "F32")  # read from the files
    check_folder(folder)  # sizes and hashes as the manifest says
    assert not list(folder.glob("*.part"))
    total = source.text.size_bytes + source.mmproj.size_bytes
    assert seen[-1] == (total, total) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    # LFS files were fetched from the storage server the Hub redirected to, each exactly once; nothing else was
    # asked (no telemetry, no version check).
    assert hub.storage_bytes() == total
    assert {(r.method, r.path.split("/")[3]) for r in hub.log if r.server == "hub"} == {("HEAD", "resolve")}
    assert {(r.method, r.path.split("/")[1]) for r in hub.log if r.server == "storage"} == {("GET", "blobs")}
    # Offline again afterwards: huggingface_hub refuses to reach the Hub on its own.
    assert hub_constants.HF_HUB_OFFLINE is True
    with pytest.raises(OfflineModeIsEnabled):
        get_hf_file_metadata(hf_hub_url(REPO, spec.text_file, endpoint=hub.endpoint))


def test_a_dropped_connection_is_resumed_by_the_next_call(hub, spec, tmp_path):
    size = len(hub.file(spec.text_file).content)
    hub.faults[spec.text_file] = Fault(drop_after=size // 2, then_down=True)
    dest = tmp_path / "models" / "tiny"
    stall_timeout_s = 3.0
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"no data for 3 s \(HTTP 503\).*download again to continue"):
        download_pair(spec, dest, stall_timeout_s=stall_timeout_s, endpoint=hub.endpoint)
    # It retried while the server was down, once every RETRY_WAIT_S, and gave up when no data had come for the
    # configured time, not before.
    assert time.monotonic() - started >= stall_timeout_s
    retries = [r for r in hub.log if r.server == "storage"][1:]
    assert 1 <= len(retries) <= math.ceil(stall_timeout_s / RETRY_WAIT_S)
    assert all(r.range == f"bytes={size // 2}-" for r in retries)
    name = spec.text_file.split("/")[-1]
    assert not (dest / name).exists() and (dest / f"{name}.part").stat().st_size == size // 2

    hub.recover()
    download_pair(spec, dest, endpoint=hub.endpoint)
    check_folder(dest)
    resumed = [r for r in hub.log if r.server == "storage" and r.range]
    assert resumed and resumed[0].range == f"bytes={size // 2}-"
    assert hub.storage_bytes(spec.text_file) < 2 * size  # the first half was not fetched again
    assert hub.storage_bytes(spec.text_file) == size


def test_a_short_interruption_is_resumed_within_the_same_call(hub, spec, tmp_path):
    size = len(hub.file(spec.text_file).content)
    hub.faults[spec.text_file] = Fault(drop_after=size // 3)
    download_pair(spec, tmp_path / "tiny", endpoint=hub.endpoint)
    check_folder(tmp_path / "tiny")
    assert [r.range for r in hub.log if r.server == "storage" and r.range] == [f"bytes={size // 3}-"]
    assert hub.storage_bytes(spec.text_file) == size


def test_a_corrupted_file_is_rejected_and_removed(hub, spec, tmp_path):
    hub.faults[spec.mmproj_file] = Fault(corrupt=True)
    dest = tmp_path / "tiny"
    with pytest.raises(DownloadError, match="does not match the Hub's checksum.*removed"):
        download_pair(spec, dest, endpoint=hub.endpoint)
    mmproj = spec.mmproj_file.split("/")[-1]
    assert not (dest / mmproj).exists() and not (dest / f"{mmproj}.part").exists()
    assert not (dest / "manifest.json").exists()
    # The text model was whole and verified: it stays, and the next call fetches only the projector.
    text_bytes = hub.storage_bytes(spec.text_file)
    del hub.faults[spec.mmproj_file]
    download_pair(spec, dest, endpoint=hub.endpoint)
    assert hub.storage_bytes(spec.text_file) == text_bytes
    check_folder(dest)


def test_a_hash_other_than_the_catalogues_is_refused_before_downloading(hub, spec, tmp_path):
    from dataclasses import replace

    with pytest.raises(DownloadError, match="not the file the catalogue names"):
        download_pair(replace(spec, text_sha256="0" * 64), tmp_path / "tiny", endpoint=hub.endpoint)
    assert hub.storage_bytes() == 0


def test_cancel_leaves_nothing_under_a_final_name(hub, spec, tmp_path):
    cancel = threading.Event()
    dest = tmp_path / "tiny"

    def progress(done, total):
        if done > 0:  # the first bytes of the first file arrived
            cancel.set()

    with pytest.raises(Cancelled):
        download_pair(spec, dest, progress=progress, cancel=cancel, endpoint=hub.endpoint)
    name = spec.text_file.split("/")[-1]
    assert {p.name for p in dest.iterdir()} == {f"{name}.part"}  # kept to continue; no final name, no manifest
    kept = (dest / f"{name}.part").stat().st_size
    assert 0 < kept < len(hub.file(spec.text_file).content)
    download_pair(spec, dest, endpoint=hub.endpoint)
    check_folder(dest)
    assert [r.range for r in hub.log if r.server == "storage" and r.range] == [f"bytes={kept}-"]  # continued


def test_a_stall_is_reported_by_the_configured_timeout(hub, spec, tmp_path):
    hub.faults[spec.text_file] = Fault(stall_after=100_000)
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"no data for 1\.5 s .*ReadTimeout.*stopped at 100\.0 KB of \d+\.\d MB;"):
        download_pair(spec, tmp_path / "tiny", stall_timeout_s=1.5, endpoint=hub.endpoint)
    assert time.monotonic() - started >= 1.5  # not before the configured time
    # Reported by the download's own clock while the server still held the silent connection open, not when
    # the server finally closed it.
    [stalled] = [r for r in hub.log if r.stalled]
    assert not stalled.stall_ended


def test_missing_repositories_and_files_are_named(hub, spec, tmp_path):
    from dataclasses import replace

    with pytest.raises(DownloadError, match="huatuo-test/nothing.*no such repository"):
        download_pair(replace(spec, repo_id="huatuo-test/nothing"), tmp_path / "a", endpoint=hub.endpoint)
    with pytest.raises(DownloadError, match="gguf/missing.gguf: no such file"):
        download_pair(replace(spec, text_file="gguf/missing.gguf"), tmp_path / "b", endpoint=hub.endpoint)
    with pytest.raises(DownloadError, match="no such revision"):
        download_pair(replace(spec, revision="v9"), tmp_path / "c", endpoint=hub.endpoint)


def test_files_that_are_not_a_pair_are_not_installed(hub, spec, tmp_path):
    from dataclasses import replace

    swapped = replace(spec, text_file=spec.mmproj_file, mmproj_file=spec.text_file)
    with pytest.raises(DownloadError, match="not a usable HuatuoGPT-Vision pair.*vision projector"):
        download_pair(swapped, tmp_path / "tiny", endpoint=hub.endpoint)
    assert not (tmp_path / "tiny").exists()


def test_a_checkpoint_downloads_what_conversion_needs(fake_hub, tiny_checkpoints, tmp_path):  # noqa: F811
    src = tiny_checkpoints("qwen2", "original")
    files = {p.relative_to(src).as_posix(): p for p in src.rglob("*") if p.is_file()}
    # Not needed for conversion: the model card and the separate CLIP weights.
    extra = {"README.md": b"# card\n", "vit/clip_vit_large_patch14_336/pytorch_model.bin": b"\0" * 1000}
    fake_hub.add_repo("huatuo-test/tiny-checkpoint", {**files, **extra})
    dest = tmp_path / "checkpoints" / "tiny"
    download_checkpoint("huatuo-test/tiny-checkpoint", dest, endpoint=fake_hub.endpoint)
    wanted = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == wanted
    for name in wanted:
        assert (dest / name).read_bytes() == (src / name).read_bytes()
    # Small files come from the Hub itself (checked by their git hash), shards from the storage server.
    assert {r.path.split("/")[-1] for r in fake_hub.log if r.server == "hub" and r.method == "GET"
            and "/resolve/" in r.path} >= {"config.json", "tokenizer.json"}


def test_the_network_guard_blocks_everything_but_this_machine(no_network):  # noqa: F811
    with pytest.raises(NetworkAccessBlocked):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    with pytest.raises(NetworkAccessBlocked):
        socket.getaddrinfo("huggingface.co", 443)
    assert len(no_network) == 2
