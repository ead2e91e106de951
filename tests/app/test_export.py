"""Conversation exports (Markdown, HTML, PDF) from a real store: content, images, de-identification, and answers
that are untrusted text (raw HTML, links, images, 2 MB) exported without anything in them becoming live."""

from __future__ import annotations

import base64
import io
import os
import re
import stat
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QFontDatabase

from app import INTENDED_USE
from app.export import export_conversation
from app.paths import data_dir
from app.store import Store
from tests.support.untrusted_output import HOSTILE, LIVE, VIEWERS, Page, two_megabytes

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
    for name, viewer in VIEWERS.items():  # the answer's raw HTML and image stay text in a viewer
        page = Page(viewer.render(text))
        assert "<script>alert(1)</script> ![tracker](http://example.invalid/pixel.png)" in page.text, name
        assert "script" not in page.tags and page.tags.count("img") == 3, name
        assert [value for attribute, value in page.attributes if attribute == "src"] == links, name


@pytest.mark.parametrize("identifiers", [False, True])
def test_html_is_self_contained(conv, tmp_path, identifiers):
    path = export_conversation(conv, tmp_path / "chest.html", "html", include_identifiers=identifiers)
    text = path.read_text(encoding="utf-8")
    common_checks(text, conv, identifiers=identifiers)
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    turn_images = [conv.images[s].png for t in conv.turns for s in t.image_shas]
    assert [base64.b64decode(u) for u in uris] == turn_images  # the exact PNGs the model saw
    assert "<strong>consolidation</strong>" in text  # Markdown rendered
    assert "<li" in text and "**" not in text
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # escaped, not run
    # Nothing is fetched when it is opened: the answer's image is shown as its text, and every "http" in the page
    # is text a reader sees, none is in an element.
    page = Page(text)
    assert "![tracker](http://example.invalid/pixel.png)" in page.text
    assert text.count("http") == page.text.count("http") == 1
    assert [v for a, v in page.attributes if a in ("src", "href")] == [f"data:image/png;base64,{u}" for u in uris]


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
    assert list(data_dir().iterdir()) == []  # the failed exports' temporary files are gone too


@pytest.mark.parametrize("fmt", ["md", "html", "pdf"])
def test_an_export_is_built_in_the_private_data_folder_and_saved_with_the_users_modes(conv, tmp_path, qapp, fmt,
                                                                                    monkeypatch):
    from app import privacy

    monkeypatch.setattr(privacy, "_user_umask", None)
    previous = os.umask(0o022)  # the user's umask, then the app's private one, as in the running app
    privacy.restrict_new_files()
    try:
        path = export_conversation(conv, tmp_path / f"chest.{fmt}", fmt)
    finally:
        os.umask(previous)
    assert list(data_dir().iterdir()) == []  # built there, nothing left behind
    saved = [path, *((tmp_path / "chest_images").iterdir() if fmt == "md" else [])]
    assert len(saved) == (3 if fmt == "md" else 1)
    assert {stat.S_IMODE(p.stat().st_mode) for p in saved} == {privacy.user_file_mode()} == {0o644}
    if fmt == "md":
        assert stat.S_IMODE((tmp_path / "chest_images").stat().st_mode) == 0o755


# --- untrusted answers


def conversation_answered(tmp_path, answer: str):
    """A stored conversation with one image and `answer` as its only answer."""
    with Store(tmp_path / "untrusted.sqlite3") as store:
        cid = store.create_conversation("Untrusted answer", store.study_key("1.2.3"), {}, MODEL, SETTINGS)
        turn = store.add_turn(cid, "What is shown?", [store.add_image(cid, png(3, (16, 16, 3)), "axial")])
        store.finish_answer(turn, "stop", [], {}, text=answer)
        return store.load(cid)


# Each hostile snippet alone in a paragraph, inline in a sentence, and in a list.
UNTRUSTED = "\n\n".join(["Findings:", *HOSTILE, "Inline: " + " and ".join(HOSTILE),
                          "\n".join(f"- {hostile}" for hostile in HOSTILE)])


def check_markdown_is_inert(path: Path) -> list[str]:
    """Reads the Markdown export as permissive viewers would: the only images are the export's own and nothing
    else is live. Returns the text a reader sees."""
    text = path.read_text(encoding="utf-8")
    own = re.findall(r"!\[Image \d+\]\(([^)]+)\)", text)
    seen = []
    for name, viewer in VIEWERS.items():
        page = Page(viewer.render(text))
        assert not (LIVE - {"img"}) & set(page.tags), name
        assert [value for attribute, value in page.attributes if attribute in ("src", "href")] == own, name
        assert all(src.startswith(f"{path.stem}_images/") for src in own)
        seen.append(page.text)
    return seen


def check_html_is_inert(path: Path) -> str:
    """Reads the HTML export as a browser would: its own images (data: URIs), style and charset are the only live
    elements. Returns the text a reader sees."""
    page = Page(path.read_text(encoding="utf-8"))
    assert not (LIVE - {"img", "style", "meta"}) & set(page.tags)
    head = page.tags[:page.tags.index("body")]
    assert page.tags.count("style") == head.count("style") == 1  # the export's own
    assert page.tags.count("meta") == head.count("meta") == 1 and ("charset", "utf-8") in page.attributes
    sources = [value for attribute, value in page.attributes if attribute in ("src", "href")]
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    return page.text


def check_pdf_is_inert(path: Path) -> pypdf.PdfReader:
    """No page of the PDF has an annotation (a link would be one), and it holds only the export's own image."""
    reader = pypdf.PdfReader(path)
    assert all(not page.annotations for page in reader.pages)
    assert b"/URI" not in path.read_bytes()
    images = {ref.idnum for page in reader.pages for ref in page["/Resources"].get("/XObject", {}).values()
              if ref.get_object()["/Subtype"] == "/Image"}
    assert len(images) == 1
    return reader


def test_untrusted_answer_stays_text_in_every_format(tmp_path, qapp):
    conv = conversation_answered(tmp_path, UNTRUSTED)
    for text in check_markdown_is_inert(export_conversation(conv, tmp_path / "untrusted.md", "md")):
        for hostile in HOSTILE:
            assert text.count(hostile) == UNTRUSTED.count(hostile), hostile
    text = check_html_is_inert(export_conversation(conv, tmp_path / "untrusted.html", "html"))
    for hostile in HOSTILE:
        assert text.count(hostile) == UNTRUSTED.count(hostile), hostile
    check_pdf_is_inert(path := export_conversation(conv, tmp_path / "untrusted.pdf", "pdf"))
    text = pdf_text(path)
    for hostile in HOSTILE:
        assert text.count(re.sub(r"\s+", "", hostile)) == UNTRUSTED.count(hostile), hostile


def test_a_two_megabyte_answer_exports_completely(tmp_path, qapp):
    answer = two_megabytes()
    count = answer.count("Paragraph ")
    numbers = [f"Paragraph {n:06d}" for n in range(count)]
    conv = conversation_answered(tmp_path, answer)
    for text in check_markdown_is_inert(export_conversation(conv, tmp_path / "long.md", "md")):
        assert [number in text for number in numbers] == [True] * count
        assert text.count("<script>alert(1)</script>") == count and text.rstrip().endswith(INTENDED_USE)
    text = check_html_is_inert(export_conversation(conv, tmp_path / "long.html", "html"))
    assert [number in text for number in numbers] == [True] * count
    assert text.count("<script>alert(1)</script>") == count and text.rstrip().endswith(INTENDED_USE)

    # PDF: hundreds of pages; reading the text of all of them takes long, so every 25th page and the last two
    # are read: their paragraphs come in order, and the answer ends on the last pages, before the closing label.
    reader = check_pdf_is_inert(export_conversation(conv, tmp_path / "long.pdf", "pdf"))
    pages = len(reader.pages)
    assert pages > 100
    found = []
    for number in sorted({*range(0, pages, 25), pages - 2, pages - 1}):
        found += [int(n) for n in re.findall(r"Paragraph\s*(\d{6})", reader.pages[number].extract_text())]
    assert found == sorted(found) and found[0] == 0 and found[-1] == count - 1
    assert len(found) >= 2 * len(range(0, pages, 25))
    last = re.sub(r"\s+", "", unicodedata.normalize("NFKC", reader.pages[-1].extract_text()))
    assert last.endswith(re.sub(r"\s+", "", INTENDED_USE))


def test_markdown_and_html_exports_need_no_qt(conv, tmp_path):
    """Exporting Markdown or HTML imports no Qt (a PDF export does: Qt writes the PDF)."""
    script = textwrap.dedent(f"""
        import sys
        from app.export import export_conversation
        from app.store import Store
        with Store({str(tmp_path / "conversations.sqlite3")!r}) as store:
            conv = store.load({conv.id})
        export_conversation(conv, {str(tmp_path / "a.md")!r}, "md")
        export_conversation(conv, {str(tmp_path / "a.html")!r}, "html")
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6")))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert "consolidation" in (tmp_path / "a.md").read_text(encoding="utf-8")
    assert "consolidation" in (tmp_path / "a.html").read_text(encoding="utf-8")
