"""Writing an export's HTML page as a PDF with Qt: A4, the images stored losslessly.

The caller must have a QGuiApplication (the app's own, or pytest-qt's `qapp`); this module creates none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QMarginsF, QRectF, QSizeF, QUrl
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPalette,
    QPdfWriter,
    QTextDocument,
)

from .store import StoredImage

PDF_MARGIN_MM = 18


def write_pdf(path: Path, title: str, page: Callable[[Callable[[StoredImage], tuple[str, str]]], str]) -> None:
    """Writes the HTML that `page` builds to `path` as a PDF. `page` is given the function that names each image
    (its src, and further <img> attributes) as a resource of the document, scaled to fit the page."""
    if QGuiApplication.instance() is None:
        raise RuntimeError("a PDF export needs a QGuiApplication; create one before exporting")
    writer = QPdfWriter(str(path))
    writer.setTitle(title)
    writer.setCreator("Huatuo Vision Desktop")
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(*[PDF_MARGIN_MM] * 4), QPageLayout.Unit.Millimeter)
    # The document is laid out in its own pixels on a page as large as the printable area, then scaled
    # onto each PDF page.
    screen = QGuiApplication.primaryScreen()
    scale = writer.logicalDpiX() / (screen.logicalDotsPerInchX() if screen is not None else 96.0)
    page_size = QSizeF(writer.width() / scale, writer.height() / scale)

    doc = QTextDocument()
    doc.setPageSize(page_size)
    font = QFont()
    font.setPointSizeF(10)
    doc.setDefaultFont(font)
    fit_width = page_size.width() - 2 * doc.documentMargin() - 2
    fit_height = page_size.height() * 0.8  # room for the caption on the same page

    def image_src(image: StoredImage) -> tuple[str, str]:
        name = f"image-{image.sha256}.png"
        picture = QImage.fromData(image.png)
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), picture)
        fit = min(1.0, fit_width / max(1, picture.width()), fit_height / max(1, picture.height()))
        return name, f" width=\"{int(picture.width() * fit)}\""

    doc.setHtml(page(image_src))
    _paint_pages(doc, writer, scale)
    del writer  # closes the file
    if not path.exists() or path.stat().st_size == 0:
        raise OSError(f"{path}: the PDF could not be written")


def _paint_pages(doc: QTextDocument, writer: QPdfWriter, scale: float) -> None:
    """Like QTextDocument.print_, but with images stored losslessly (print_ would re-encode them as JPEG)."""
    painter = QPainter()
    if not painter.begin(writer):
        return
    painter.setRenderHint(QPainter.RenderHint.LosslessImageRendering)
    painter.scale(scale, scale)
    context = QAbstractTextDocumentLayout.PaintContext()
    palette = context.palette
    palette.setColor(QPalette.ColorRole.Text, QColor("black"))  # not the desktop theme's text colour
    context.palette = palette
    height = doc.pageSize().height()
    for number in range(doc.pageCount()):
        if number:
            writer.newPage()
        painter.save()
        painter.translate(0, -number * height)
        context.clip = QRectF(0, number * height, doc.pageSize().width(), height)
        painter.setClipRect(context.clip)
        doc.documentLayout().draw(painter, context)
        painter.restore()
    painter.end()
