"""What a teaching-case export holds besides the de-identified files: the conversation without identifiers, the
PNGs the model saw where no DICOM source is known, the whole series on request, and the warning (and the
confirmation asked again) for files that may have text burned into their pixels."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from app.paths import data_dir
from app.teaching_case import AttachedSources, export_case, plan_case


def test_the_folder_holds_the_conversation_without_identifiers(tmp_path, conversation):
    conv, sources = conversation
    plan = plan_case(conv, sources)
    folder = export_case(conv, plan, tmp_path / "case", fmt="html")
    page = (folder / "conversation.html").read_text(encoding="utf-8")
    assert "What is shown?" in page and "More slices." in page
    assert "DOE^JANE" not in page and "SERIES DESCRIPTION" not in page  # study data and attach labels left out
    assert "dicom/IM0001.dcm, frame 1" in page and "dicom/IM0004.dcm, frame 4" in page
    readme = (folder / "README.txt").read_text(encoding="utf-8")
    assert "Image 4: dicom/IM0004.dcm, frame 4" in readme and "113100" in readme
    assert "US images often have text burned into the pixels" in readme
    assert not list(data_dir().glob("teaching-*"))  # the staging folder is gone
    with pytest.raises(FileExistsError):
        export_case(conv, plan, folder)


def test_images_without_a_dicom_source_are_exported_as_the_png_the_model_saw(tmp_path, conversation):
    conv, _ = conversation
    plan = plan_case(conv, AttachedSources())  # another session: no source is known
    assert not plan.dicom_files and len(plan.png_images) == len(conv.images)
    assert "exported as the PNG the model saw" in plan.warnings[-1]
    folder = export_case(conv, plan, tmp_path / "case")
    assert not (folder / "dicom").exists()
    for image in plan.images:
        written = np.asarray(Image.open(folder / "images" / f"image-{image.number:02d}.png"))
        assert np.array_equal(written, np.asarray(Image.open(io.BytesIO(conv.images[image.sha256].png))))
    assert "its source file is not known in this session" in (folder / "README.txt").read_text(encoding="utf-8")


def test_the_whole_series_on_request_and_the_burned_in_warning(tmp_path, conversation, study):
    conv, sources = conversation
    extra = study[0].with_name("CT_small_3.dcm")
    ds = pydicom.dcmread(study[0])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(extra)
    plan = plan_case(conv, sources, series_files=[study[0], extra])
    assert list(plan.dicom_files)[-1] == extra and len(plan.dicom_files) == len(study) + 1  # each file once
    warnings = " ".join(plan.warnings)
    assert "US images often have text burned into the pixels" in warnings and "IM0003.dcm" in warnings
    assert "IM0004.dcm" not in warnings  # emri_small says Burned In Annotation NO
    ct_only = plan_case(conv, AttachedSources(), series_files=[study[0]])
    assert list(ct_only.dicom_files) == [study[0]] and not any("burned into" in w for w in ct_only.warnings)


def test_files_added_to_the_export_need_the_burned_in_confirmation_again(qtbot, conversation, study):
    """The export is confirmed for the files it holds: ticking the whole series, which adds an ultrasound file that
    may have text in its pixels, asks again."""
    from app.ui.teaching_case_dialog import TeachingCaseDialog

    conv, _ = conversation
    ultrasound = next(path for path in study if pydicom.dcmread(path).Modality == "US")
    dialog = TeachingCaseDialog(conv, AttachedSources(), [ultrasound])  # sources unknown: the PNGs the model saw
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert dialog.plan.warnings and not dialog.export_button.isEnabled()
    dialog.checked.setChecked(True)
    assert dialog.export_button.isEnabled()
    dialog.whole_series.setChecked(True)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert "US images often have text burned into the pixels" in dialog.warnings.text()
    assert not dialog.checked.isChecked() and not dialog.export_button.isEnabled()
    dialog.checked.setChecked(True)
    dialog.whole_series.setChecked(False)  # fewer files: what was confirmed still covers them
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert dialog.checked.isChecked() and dialog.export_button.isEnabled()
