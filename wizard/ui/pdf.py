"""HTML to an A4 PDF with Qt only (QTextDocument + QPdfWriter), numbered pages, headless."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMarginsF, QRectF, QSizeF, Qt
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QFont,
    QFontDatabase,
    QGuiApplication,
    QPageLayout,
    QPageSize,
    QPainter,
    QPalette,
    QPdfWriter,
    QTextDocument,
    QTextOption,
)

from wizard.core.files import write_atomic
from wizard.core.journal import Journal
from wizard.core.report import build_report, render_html

MARGINS_MM = QMarginsF(16, 14, 16, 12)
FOOTER_PT = 9  # the footer line's font size; its band is two lines high
RESOLUTION = 300


def ensure_gui_app() -> QGuiApplication:
    """The running Qt application, or a new QGuiApplication (fonts need one)."""
    app = QGuiApplication.instance()
    if app is None:
        app = QGuiApplication(["enerlink-migrate"])
    assert isinstance(app, QGuiApplication), "a QCoreApplication cannot lay out text"
    return app


def html_to_pdf(html: str, path: Path, *, title: str = "", footer: str = "") -> int:
    """Write `html` to `path` (atomically, 0600) as an A4 PDF; returns the number of pages.

    The PDF is laid out in memory and written by write_atomic, so a failed or interrupted
    export leaves the previous file, never half of one.
    """
    ensure_gui_app()
    path = Path(path)
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    try:
        pages = _render(html, buffer, path, title, footer)
        data = bytes(buffer.data().data())
    finally:
        buffer.close()
    write_atomic(path, data)
    return pages


def _render(html: str, device: QBuffer, path: Path, title: str, footer: str) -> int:
    writer = QPdfWriter(device)
    writer.setResolution(RESOLUTION)
    writer.setTitle(title)
    writer.setCreator("enerlink-migrate")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Portrait, MARGINS_MM,
                                     QPageLayout.Unit.Millimeter))
    area = writer.pageLayout().paintRectPixels(writer.resolution())
    width, height = float(area.width()), float(area.height())

    doc = QTextDocument()
    doc.documentLayout().setPaintDevice(writer)  # lay out in the PDF's own resolution
    base = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
    base.setPointSizeF(9)
    doc.setDefaultFont(base)
    option = QTextOption()
    # Long tokens (sha256, constraint names, paths) may break anywhere rather than run off.
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    doc.setDefaultTextOption(option)
    doc.setDocumentMargin(0)
    doc.setHtml(html)

    footer_font = QFont(base)
    footer_font.setPointSizeF(FOOTER_PT - 1.5)
    footer_h = FOOTER_PT / 72.0 * writer.resolution() * 2.2
    page_h = height - footer_h
    doc.setPageSize(QSizeF(width, page_h))
    pages = doc.pageCount()

    # Paper is white whatever the desktop theme: text without its own colour is black
    # (the default paint context would use the application's, possibly dark, palette).
    ctx = QAbstractTextDocumentLayout.PaintContext()
    paper = QPalette()
    paper.setColor(QPalette.ColorRole.Text, Qt.GlobalColor.black)
    paper.setColor(QPalette.ColorRole.WindowText, Qt.GlobalColor.black)
    paper.setColor(QPalette.ColorRole.Base, Qt.GlobalColor.white)
    ctx.palette = paper
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError(f"cannot lay out the PDF for {path}: Qt's PDF writer refused to "
                      "start; run enerlink-migrate --self-test to check the Qt install")
    try:
        for n in range(pages):
            if n:
                writer.newPage()
            painter.save()
            painter.translate(0, -n * page_h)
            ctx.clip = QRectF(0, n * page_h, width, page_h)
            painter.setClipRect(ctx.clip)
            doc.documentLayout().draw(painter, ctx)
            painter.restore()
            painter.setFont(footer_font)
            painter.setPen(Qt.GlobalColor.darkGray)
            band = QRectF(0, page_h, width, footer_h)
            painter.drawLine(band.topLeft(), band.topRight())
            painter.drawText(band, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom),
                             footer)
            painter.drawText(band, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom),
                             f"page {n + 1} of {pages}")
    finally:
        painter.end()
    return pages


def write_report_pdf(journal: Journal, path: Path) -> int:
    """The run's report as a PDF; returns the page count."""
    model = build_report(journal)
    db = str(model.target.get("dbname", "?"))
    footer = f"EnerLink prosumer → user · {db} · run {model.run}"
    return html_to_pdf(render_html(model), path,
                       title=f"EnerLink migration report — {db}", footer=footer)
