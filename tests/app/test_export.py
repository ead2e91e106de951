"""Conversation exports (Markdown, HTML, PDF) from a real store: content, images, de-identification."""

from __future__ import annotations

import base64
import io
import re
import unicodedata

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QFontDatabase

from app import INTENDED_USE
from app.export import export_conversation
from app.store import Store

pypdf = pytest.importorskip("pypdf")

PATIENT = {"patient_name": "DOE^JANE", "patient_id": "PID12345", "study_date": "20240101",
           "description": "CT CHEST WITH CONTRAST"}
MODEL = {"name": "HuatuoGPT-Vision-tiny", "text": {"file": "tiny-F32.gguf", "sha256": "1a" * 32},
         "mmproj": {"file": "tiny-mmproj-F16.gguf", "sha256": "2b" * 32}}
SETTINGS = {"temperature": 0.2, "repetition_penalty": 1.2, "max_new_tokens": 512}
ANSWER = ("The image shows **consolidation** in the right lower lobe.\n\n- 右下肺可见斑片状阴影\n- 考虑肺炎\n\n"
          "<script>alert(1)</script> ![tracker](http://example.invalid/pixel.png)")
PARTIAL = "部分回答 partial answer"


def png(seed: int, shape: tuple[int, ...]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def rgb(png_bytes: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB"))


@pytest.fixture
def conv(tmp_path):
    first, second = png(1, (48, 48, 3)), png(2, (30, 60))  # colour and grey
    with Store(tmp_path / "conversations.sqlite3") as store:
        cid = store.create_conversation("Chest CT 胸部", store.study_key("1.2.840.99.1"), PATIENT, MODEL, SETTINGS)
        sha1, sha2 = store.add_image(cid, first, "axial 12/40"), store.add_image(cid, second, "scout")
        turn = store.add_turn(cid, "What is shown? 右下肺有什么？", [sha1, sha2])
        store.finish_answer(turn, "stop", [1, 2], {"ttft_s": 0.3}, text=ANSWER)
        turn = store.add_turn(cid, "And compared with the scout?", [sha1])
        store.append_answer(turn, PARTIAL)  # interrupted: still pending
        return store.load(cid)


def common_checks(text: str, conv, *, identifiers: bool) -> None:
    for needed in ["Chest CT 胸部", "What is shown? 右下肺有什么？", "右下肺可见斑片状阴影", "考虑肺炎",
                   PARTIAL, "Interrupted", MODEL["name"], MODEL["text"]["file"], MODEL["text"]["sha256"],
                   MODEL["mmproj"]["file"], MODEL["mmproj"]["sha256"], "temperature 0.2", "repetition_penalty 1.2",
                   *conv.images]:
        assert needed in text, needed
    assert text.count(INTENDED_USE) >= 2
    assert text.index(INTENDED_USE) < text.index("Question 1") and text.rindex(INTENDED_USE) > text.index(PARTIAL)
    assert conv.study_key not in text
    for identifier in PATIENT.values():
        assert (identifier in text) == identifiers, identifier


@pytest.mark.parametrize("identifiers", [False, True])
def test_markdown(conv, tmp_path, identifiers):
    path = export_conversation(conv, tmp_path / "chest export.md", "md", include_identifiers=identifiers)
    text = path.read_text(encoding="utf-8")
    common_checks(text, conv, identifiers=identifiers)
    assert "**consolidation**" in text  # the answer's own Markdown
    links = re.findall(r"!\[Image \d\]\(([^)]+)\)", text)
    assert len(links) == 3  # two images in the first question, one again in the second
    assert all(link.startswith("chest%20export_images/") for link in links)
    files = sorted((tmp_path / "chest export_images").iterdir())
    assert len(files) == 2 and {f.read_bytes() for f in files} == {i.png for i in conv.images.values()}
    turn_images = [conv.images[s].png for t in conv.turns for s in t.image_shas]
    assert [(tmp_path / link.replace("%20", " ")).read_bytes() for link in links] == turn_images


@pytest.mark.parametrize("identifiers", [False, True])
def test_html_is_self_contained(conv, tmp_path, identifiers):
    path = export_conversation(conv, tmp_path / "chest.html", "html", include_identifiers=identifiers)
    text = path.read_text(encoding="utf-8")
    common_checks(text, conv, identifiers=identifiers)
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    turn_images = [conv.images[s].png for t in conv.turns for s in t.image_shas]
    assert [base64.b64decode(u) for u in uris] == turn_images  # the exact PNGs the model saw
    assert re.search(r"<span[^>]*font-weight:700[^>]*>consolidation</span>", text)  # Markdown rendered
    assert "<li" in text and "**" not in text
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # escaped, not run
    assert "example.invalid" not in text and "http" not in text  # nothing is fetched when it is opened


def pdf_text(path) -> str:
    """The PDF's text as pypdf extracts it, with ligatures unfolded and all white space removed."""
    reader = pypdf.PdfReader(path)
    text = "".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@pytest.mark.parametrize("identifiers", [False, True])
def test_pdf(conv, tmp_path, qapp, identifiers):
    path = export_conversation(conv, tmp_path / "chest.pdf", "pdf", include_identifiers=identifiers)
    reader = pypdf.PdfReader(path)
    assert reader.pages[0].mediabox.width == pytest.approx(595, abs=1)  # A4
    text = pdf_text(path)
    first_page = re.sub(r"\s+", "", unicodedata.normalize("NFKC", reader.pages[0].extract_text()))
    nospace = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    assert nospace(INTENDED_USE) in first_page and text.count(nospace(INTENDED_USE)) >= 2
    for needed in ["What is shown?", "consolidation", "partial answer", "Interrupted", MODEL["text"]["file"],
                   MODEL["text"]["sha256"], MODEL["mmproj"]["sha256"], "temperature0.2", *conv.images,
                   "<script>alert(1)</script>"]:
        assert nospace(needed) in text, needed
    assert "**" not in text and conv.study_key not in text
    for identifier in PATIENT.values():
        assert (nospace(identifier) in text) == identifiers, identifier
    # The images are stored losslessly: their pixels are the pixels the model saw (a page holds each image once).
    pictures = [np.asarray(image.image.convert("RGB")) for page in reader.pages for image in page.images]
    expected = [rgb(image.png) for image in conv.images.values()]
    same = lambda a, b: a.shape == b.shape and (a == b).all()  # noqa: E731
    assert all(any(same(p, e) for p in pictures) for e in expected)
    assert all(any(same(p, e) for e in expected) for p in pictures)


def test_pdf_keeps_chinese(conv, tmp_path, qapp):
    if not QFontDatabase.families(QFontDatabase.WritingSystem.SimplifiedChinese):
        pytest.skip("no Chinese font installed (e.g. Debian's fonts-wqy-microhei)")
    text = pdf_text(export_conversation(conv, tmp_path / "chest.pdf", "pdf"))
    for needed in ["胸部", "右下肺有什么？", "右下肺可见斑片状阴影", "考虑肺炎", "部分回答"]:
        assert unicodedata.normalize("NFKC", needed) in text, needed


def test_failed_export_leaves_no_file_under_the_final_name(conv, tmp_path, qapp):
    final = tmp_path / "chest.html"
    final.write_text("the previous export")
    conv.turns[0].question = "broken text \ud800"  # cannot be encoded: the write fails half way
    with pytest.raises(UnicodeEncodeError):
        export_conversation(conv, final, "html")
    assert final.read_text() == "the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chest.html", "conversations.sqlite3"]

    with pytest.raises(OSError, match="no-such-folder"):
        export_conversation(conv, tmp_path / "no-such-folder" / "chest.pdf", "pdf")
    with pytest.raises(ValueError, match="unknown export format"):
        export_conversation(conv, tmp_path / "chest.docx", "docx")
