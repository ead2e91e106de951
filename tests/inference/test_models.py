"""Importing a GGUF pair, deleting a model and the default-model setting, on real files."""

from __future__ import annotations

import shutil
import threading

import pytest

from inference.cancellation import Cancelled
from inference.store.gguf_check import ModelFileError, check_folder
from inference.store.manifest import Manifest
from inference.store.models import (
    DEFAULT_MODEL_FILE,
    active_model,
    default_model,
    delete_model,
    import_pair,
    installed_models,
    model_fit,
    set_default_model,
)


@pytest.fixture
def source(converted):
    folder = converted("qwen2", "original", "F32")
    manifest = Manifest.read(folder)
    return folder / manifest.text.file, folder / manifest.mmproj.file, manifest


def test_import_copies_validates_and_describes_the_pair(source, tmp_path):
    text, mmproj, original = source
    seen = []
    model = import_pair(text, mmproj, tmp_path / "models", progress=lambda d, t: seen.append((d, t)))
    assert model.folder == tmp_path / "models" / text.stem
    assert (model.manifest.text.sha256, model.manifest.mmproj.sha256) == (original.text.sha256, original.mmproj.sha256)
    assert model.manifest.text.quantization == "F32"
    assert model.manifest.vision_layers_used == original.vision_layers_used
    assert model.manifest.source["imported_from"]["text"] == str(text)
    check_folder(model.folder)
    assert seen[-1][0] == seen[-1][1] == text.stat().st_size + mmproj.stat().st_size
    assert [m.folder for m in installed_models(tmp_path / "models")[0]] == [model.folder]
    # A second import of the same files gets its own folder.
    again = import_pair(text, mmproj, tmp_path / "models", copy=False)
    assert again.folder.name == f"{text.stem}-2" and again.manifest.source["hard_linked"] is True
    assert (again.folder / text.name).stat().st_ino == text.stat().st_ino
    check_folder(again.folder)


def test_a_wrong_pick_is_explained_and_nothing_is_created(source, tmp_path):
    text, mmproj, _ = source
    with pytest.raises(ModelFileError, match="vision projector"):
        import_pair(mmproj, text, tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_a_cancelled_import_leaves_nothing(source, tmp_path):
    text, mmproj, _ = source
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        import_pair(text, mmproj, tmp_path / "models", progress=lambda d, t: cancel.set(), cancel=cancel)
    assert list((tmp_path / "models").iterdir()) == []
    assert text.is_file() and mmproj.is_file()


def test_default_model_and_delete(source, tmp_path):
    text, mmproj, _ = source
    root = tmp_path / "models"
    first = import_pair(text, mmproj, root, name="first")
    second = import_pair(text, mmproj, root, name="second")
    assert default_model(root) is None
    set_default_model(root, second.folder)
    assert default_model(root) == second.folder and (root / DEFAULT_MODEL_FILE).is_file()
    with pytest.raises(ModelFileError, match="not an installed model"):
        set_default_model(root, tmp_path)
    (second.folder / "notes.txt").write_text("mine")  # a file the user put there survives the delete
    delete_model(second)
    assert default_model(root) is None and not (root / DEFAULT_MODEL_FILE).exists()
    assert [p.name for p in second.folder.iterdir()] == ["notes.txt"]
    assert [m.folder for m in installed_models(root)[0]] == [first.folder]
    delete_model(first)
    assert not first.folder.exists()
    assert text.is_file()  # the source files were copied, never moved


def test_an_installed_model_gets_a_fit_verdict(source, tmp_path):
    text, mmproj, _ = source
    model = import_pair(text, mmproj, tmp_path / "models")
    fit = model_fit(model, bandwidth_gb_s=20.0)
    assert fit.verdict == "fits" and fit.ram_needed_bytes > model.size_bytes


def test_the_first_usable_model_becomes_the_default_and_stays(source, tmp_path):
    text, mmproj, _ = source
    root = tmp_path / "models"
    assert active_model(root, installed_models(root)[0]) == (None, "")
    first = import_pair(text, mmproj, root, name="m-first")
    later = import_pair(text, mmproj, root, name="a-later")  # sorts first, installed later
    model, why = active_model(root, installed_models(root)[0])
    assert model.folder == first.folder and why == "" and default_model(root) == first.folder  # recorded
    set_default_model(root, later.folder)
    assert active_model(root, installed_models(root)[0])[0].folder == later.folder
    delete_model(later)  # the default deleted: the remaining one takes over, and is recorded
    assert active_model(root, installed_models(root)[0])[0].folder == first.folder
    assert default_model(root) == first.folder


def test_a_broken_model_is_listed_never_chosen_and_named_in_errors(source, tmp_path):
    text, mmproj, manifest = source
    root = tmp_path / "models"
    whole = import_pair(text, mmproj, root, name="whole")
    broken = import_pair(text, mmproj, root, name="a-broken")  # the same file names as the whole one
    cut = broken.folder / manifest.text.file
    cut.write_bytes(cut.read_bytes()[:1000])
    models = {m.folder.name: m for m in installed_models(root)[0]}
    assert models["whole"].usable and not models["a-broken"].usable
    assert "bytes, its manifest says" in models["a-broken"].problem
    assert active_model(root, list(models.values()))[0].folder == whole.folder
    with pytest.raises(ModelFileError, match="model a-broken cannot be used"):
        set_default_model(root, broken.folder)
    with pytest.raises(ModelFileError, match="^model a-broken: "):
        check_folder(broken.folder)  # what loading it says: which model, not only which file
    shutil.copy(text, cut)
    (broken.folder / manifest.mmproj.file).unlink()
    assert "is missing" in installed_models(root)[0][0].problem
    set_default_model(root, whole.folder)
    (whole.folder / manifest.text.file).write_bytes(b"NOPE" + bytes(text.stat().st_size - 4))
    model, why = active_model(root, installed_models(root)[0])
    assert model is None and why == "the default model (whole) cannot be used: " \
        f"{manifest.text.file} is not a GGUF file."
