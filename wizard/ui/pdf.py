"""HTML to an A4 PDF with Qt only (QTextDocument + QPdfWriter), numbered pages, headless."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    QTextBlock,
    QTextBlockFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextFrame,
    QTextOption,
    QTextTable,
)

from wizard.core.files import write_atomic
from wizard.core.journal import Journal
from wizard.core.report import build_report, render_html

MARGINS_MM = QMarginsF(16, 14, 16, 12)
FOOTER_PT = 9  # the footer line's font size; its band is two lines high
RESOLUTION = 300
KEEP_PASSES = 400  # page breaks moved at most; each is one more layout of the document
TABLE_SPACE_PT = 4.0  # below every table
SMALL_TABLE = 0.4  # a table shorter than this part of a page is kept on one page


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


@dataclass
class Pages:
    """A document laid out on A4 pages of the PDF writer, room left for the footer."""

    doc: QTextDocument
    width: float
    page_h: float
    footer_h: float
    font: QFont

    @property
    def count(self) -> int:
        return self.doc.pageCount()


def a4_writer(device: QIODevice, title: str = "") -> QPdfWriter:
    writer = QPdfWriter(device)
    writer.setResolution(RESOLUTION)
    writer.setTitle(title)
    writer.setCreator("enerlink-migrate")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Portrait, MARGINS_MM,
                                     QPageLayout.Unit.Millimeter))
    return writer


def lay_out(html: str, writer: QPdfWriter) -> Pages:
    """`html` laid out in pages of `writer`, with what a page break would cut badly moved
    to the next page (keep_together)."""
    area = writer.pageLayout().paintRectPixels(writer.resolution())
    width, height = float(area.width()), float(area.height())
    doc = QTextDocument()
    doc.documentLayout().setPaintDevice(writer)  # lay out in the PDF's own resolution
    base = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
    base.setPointSizeF(9)
    # No ligatures: "fi" typeset as one glyph reads back as U+FB01, so a reviewer's search
    # of the PDF for "verified" or "fingerprint" (or pdftotext) would not find them.
    if hasattr(base, "setFeature"):  # Qt 6.7+; 6.6 keeps its ligatures
        base.setFeature(QFont.Tag("liga"), 0)
    doc.setDefaultFont(base)
    option = QTextOption()
    # Long tokens (sha256, constraint names, paths) may break anywhere rather than run off.
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    doc.setDefaultTextOption(option)
    doc.setDocumentMargin(0)
    doc.setHtml(html)
    # Qt's HTML gives tables no margin, so a heading right after a table touched it.
    space = TABLE_SPACE_PT / 72.0 * writer.resolution()
    for table in _tables(doc.rootFrame()):
        fmt = table.format()
        fmt.setBottomMargin(max(fmt.bottomMargin(), space))
        table.setFormat(fmt)
    footer_font = QFont(base)
    footer_font.setPointSizeF(FOOTER_PT - 1.5)
    footer_h = FOOTER_PT / 72.0 * writer.resolution() * 2.2
    page_h = height - footer_h
    doc.setPageSize(QSizeF(width, page_h))
    keep_together(doc, page_h)
    _lay_out_to_the_end(doc)
    return Pages(doc, width, page_h, footer_h, footer_font)


def _render(html: str, device: QBuffer, path: Path, title: str, footer: str) -> int:
    writer = a4_writer(device, title)
    laid = lay_out(html, writer)
    doc, width, page_h, footer_h, footer_font = (laid.doc, laid.width, laid.page_h,
                                                 laid.footer_h, laid.font)
    pages = laid.count

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


def keep_together(doc: QTextDocument, page_h: float) -> int:
    """Move to the next page what a page break would cut badly: a heading left alone at
    the bottom of a page, a table row split over two pages, a small table (the rollback
    point's box) split at all. One cut is mended per layout, from the top down, because
    each move shifts everything after it. Returns how many were moved."""
    mended: set[float] = set()
    for moved in range(KEEP_PASSES):
        cut = first_cut(doc, page_h)
        if cut is None:
            return moved
        where, mend = cut
        if where in mended:  # mending it again would not help: leave the rest as it is
            return moved
        mended.add(where)
        mend()
    return KEEP_PASSES


def first_cut(doc: QTextDocument, page_h: float) -> tuple[float, Callable[[], None]] | None:
    """The topmost bad cut of the laid-out document (where, and how to mend it), if any."""
    _lay_out_to_the_end(doc)
    cuts = [cut for cut in (_split_table(doc, page_h), _orphan_heading(doc, page_h))
            if cut is not None]
    return min(cuts, key=lambda cut: cut[0]) if cuts else None


def _lay_out_to_the_end(doc: QTextDocument) -> None:
    """Qt lays a document out lazily, and a change of format leaves the layout behind it
    unfinished (pageCount() then counts too few pages): asking where the last block is
    lays everything out."""
    doc.documentLayout().blockBoundingRect(doc.lastBlock())


def _page(y: float, page_h: float) -> int:
    return int(y // page_h)


def _tables(frame: QTextFrame) -> list[QTextTable]:
    found: list[QTextTable] = []
    for child in frame.childFrames():
        if isinstance(child, QTextTable):
            found.append(child)
        found += _tables(child)
    return found


def _row_span(doc: QTextDocument, table: QTextTable, row: int) -> tuple[float, float]:
    layout = doc.documentLayout()
    cells = [table.cellAt(row, c) for c in range(table.columns())]
    top = min(layout.blockBoundingRect(c.firstCursorPosition().block()).top() for c in cells)
    bottom = max(layout.blockBoundingRect(c.lastCursorPosition().block()).bottom()
                 for c in cells)
    return top, bottom


def _split_table(doc: QTextDocument, page_h: float) -> tuple[float, Callable[[], None]] | None:
    """The first table row that a page break cuts (a row taller than half a page must be
    cut), or the first small table cut anywhere."""
    for table in _tables(doc.rootFrame()):
        rows, head = table.rows(), table.format().headerRowCount()
        first, _ = _row_span(doc, table, 0)
        _, last = _row_span(doc, table, rows - 1)
        movable = first % page_h > page_h / 20  # not at the top of a page already
        if movable and last - first < SMALL_TABLE * page_h and \
                _page(first, page_h) != _page(last - 1, page_h):
            return first, lambda t=table: _break_before_table(t)
        for row in range(head, rows):
            top, bottom = _row_span(doc, table, row)
            if _page(top, page_h) == _page(bottom - 1, page_h) or bottom - top > page_h / 2:
                continue
            if row > head:
                gap = (_page(top, page_h) + 1) * page_h - top
                return top, lambda t=table, r=row, g=gap: _lengthen_row(doc, t, r - 1, g)
            if movable:  # its first row: the table (and its header row) go together
                return top, lambda t=table: _break_before_table(t)
    return None


def _lengthen_row(doc: QTextDocument, table: QTextTable, row: int, gap: float) -> None:
    """Make `row` `gap` taller, to the page's end, so that the next row starts the next
    page (as Qt itself does when no part of a row fits): padding below its first cell."""
    cell = table.cellAt(row, 0)
    layout = doc.documentLayout()
    short = _row_span(doc, table, row)[1] - layout.blockBoundingRect(
        cell.lastCursorPosition().block()).bottom()  # how much taller the row is than it
    fmt = cell.format().toTableCellFormat()
    base = fmt.bottomPadding() if fmt.hasProperty(QTextFormat.Property.TableCellBottomPadding) \
        else table.format().cellPadding()
    device = layout.paintDevice()
    scale = device.logicalDpiY() / 96.0 if device is not None else 1.0  # Qt scales padding
    fmt.setBottomPadding(base + (short + gap) / scale + 1)
    cell.setFormat(fmt)


def _break_before_table(table: QTextTable) -> None:
    fmt = table.format()
    fmt.setPageBreakPolicy(QTextFormat.PageBreakFlag.PageBreak_AlwaysBefore)
    table.setFormat(fmt)


def _orphan_heading(doc: QTextDocument, page_h: float) -> tuple[float, Callable[[], None]] | None:
    """The first heading whose page ends before what it heads begins (the first two lines
    of text after it, or the first row of its table)."""
    layout = doc.documentLayout()
    block = doc.begin()
    while block.isValid():
        if block.blockFormat().headingLevel() > 0:
            top = layout.blockBoundingRect(block).top()
            after, table = _headed(doc, block)
            if after is not None and top % page_h > page_h / 20 and \
                    _page(top, page_h) != _page(after, page_h):
                return top, lambda b=block, t=table: _break_before_block(b, t)
        block = block.next()
    return None


def _headed(doc: QTextDocument, heading: QTextBlock
            ) -> tuple[float | None, QTextTable | None]:
    """Where the content a heading introduces has begun for certain: the bottom of the
    second line of text after it, or the bottom of its table's first body row (and that
    table)."""
    layout = doc.documentLayout()
    lines = 0
    seen: float | None = None  # the bottom of the last line of text so far
    block = heading.next()
    while block.isValid():
        table = QTextCursor(block).currentTable()
        if table is not None:
            row = min(table.format().headerRowCount(), table.rows() - 1)
            return _row_span(doc, table, row)[1] - 1, table
        if block.blockFormat().headingLevel() > 0:
            break  # one line, then the next heading (which is checked itself)
        text_lines = block.layout().lineCount() if block.text().strip() else 0
        for n in range(text_lines):
            line = block.layout().lineAt(n)
            seen = layout.blockBoundingRect(block).top() + line.y() + line.height() - 1
            lines += 1
            if lines == 2:
                return seen, None
        block = block.next()
    return seen, None


def _break_before_block(block: QTextBlock, table: QTextTable | None) -> None:
    """A page break before the heading `block`; the table it heads, moved to a new page
    before, now follows it there."""
    fmt = QTextBlockFormat()
    fmt.setPageBreakPolicy(QTextFormat.PageBreakFlag.PageBreak_AlwaysBefore)
    QTextCursor(block).mergeBlockFormat(fmt)
    if table is not None:
        table_fmt = table.format()
        table_fmt.setPageBreakPolicy(QTextFormat.PageBreakFlag.PageBreak_Auto)
        table.setFormat(table_fmt)


def write_report_pdf(journal: Journal, path: Path) -> int:
    """The run's report as a PDF; returns the page count."""
    model = build_report(journal)
    db = str(model.target.get("dbname", "?"))
    ref = f"{model.change_ref} · " if model.change_ref else ""
    footer = f"{ref}EnerLink prosumer → user · {db} · run {model.run}"
    return html_to_pdf(render_html(model), path,
                       title=f"EnerLink migration report — {ref}{db}", footer=footer)
