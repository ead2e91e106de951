"""The chat's transcript: a conversation as the user reads it, and the answer being written streaming into it.

Each question has an Edit link and each answer a Copy link (the same in the context menu, with Regenerate for the last
answer; the Menu key and Shift+F10 open it for the turn at the text cursor): they are the only links in the
transcript, written here; an answer's own text never has any (see app.ui.answer_view)."""

from __future__ import annotations

import html

from PySide6.QtCore import QByteArray, QEvent, QPoint, QUrl, Signal
from PySide6.QtGui import QImage, QPalette, QTextCharFormat, QTextCursor, QTextDocument, QTextImageFormat
from PySide6.QtWidgets import QMenu, QTextBrowser

from app import INTENDED_USE
from app.finish import finish_phrase
from app.store import StoredConversation, StoredTurn
from app.ui.answer_view import StreamedAnswer, insert_answer, scroll_to_end
from app.ui.keyboard_menu import KeyboardMenu

THUMB_WIDTH = 112


class Transcript(QTextBrowser):
    """Each question with the images asked about (from the store), each answer rendered from its Markdown (see
    app.ui.answer_view: nothing in it is interpreted as HTML, followed or loaded) with how it ended."""

    copy_requested = Signal(int)  # the id of the turn whose answer is to be copied
    edit_requested = Signal(int)  # the id of the turn whose question is to be edited
    regenerate_requested = Signal()  # the last answer is to be asked again

    def __init__(self):
        super().__init__()
        self.setOpenExternalLinks(False)
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._on_link)
        KeyboardMenu(self, self.menu_from_keyboard, "the turn at the text cursor")
        self.turn_starts: list[tuple[int, StoredTurn]] = []  # where each turn begins in the document
        self.setPlaceholderText("Open a study, attach the view, and ask a question about it.")
        self.streamed = StreamedAnswer(self)  # the answer being written, at the end of the transcript
        self.answering: int | None = None  # the id of the turn it answers
        self.shown: StoredConversation | None = None

    def start_answer(self, conversation: StoredConversation) -> None:
        """Show the conversation with its last turn being answered, empty so far."""
        self.answering = conversation.turns[-1].id
        self.streamed.reset()
        self.show_conversation(conversation)

    def add_piece(self, piece: str) -> None:
        self.streamed.add(piece)

    def end_answer(self, conversation: StoredConversation | None) -> None:
        """The answer has ended: the conversation as stored, every answer whole."""
        self.answering = None
        self.streamed.stop()
        self.show_conversation(conversation)

    def show_conversation(self, conversation: StoredConversation | None) -> None:
        doc = self.document()
        doc.clear()
        self.turn_starts = []
        self.shown = conversation
        if conversation is None:
            return
        cursor = QTextCursor(doc)
        for turn in conversation.turns:
            self.turn_starts.append((cursor.position(), turn))
            cursor.insertHtml(f"<p style='margin-top:10px'><b>You</b> &nbsp;{_link('edit', turn.id, 'Edit')}</p>")
            cursor.insertBlock()
            for sha in turn.image_shas:  # the user's own attachments, from the store: the only images shown
                url = f"image:{sha}"
                doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(url),
                                QImage.fromData(QByteArray(conversation.images[sha].png)))
                image = QTextImageFormat()
                image.setName(url)
                image.setWidth(THUMB_WIDTH)
                image.setHeight(THUMB_WIDTH)
                cursor.insertImage(image)
                cursor.insertText(" ")
            if turn.image_shas:
                cursor.insertBlock()
            cursor.insertText(turn.question, QTextCharFormat())  # plain: not the heading's bold
            cursor.insertBlock()
            cursor.insertHtml("<p style='margin-top:6px'><b>Model</b></p>")
            cursor.insertBlock()
            if turn.id == self.answering:  # the last turn: the streamed answer runs to the end of the document
                self.streamed.start = cursor.position()
                if self.streamed.text:
                    insert_answer(cursor, self.streamed.text)
                else:
                    cursor.insertText("…")
                break
            insert_answer(cursor, turn.answer or " ")
            note = finish_phrase(turn.finish) + (f": {turn.note}" if turn.note else "")
            cursor.insertBlock()
            if note:
                cursor.insertHtml(f"<i>({html.escape(note)})</i> ")
            if turn.answer:
                cursor.insertHtml(_link("copy", turn.id, "Copy") + " &nbsp;")
            muted = self.palette().color(QPalette.ColorRole.PlaceholderText).name()  # the theme's secondary text
            cursor.insertHtml(f"<span style='color:{muted}; font-size:small'>{INTENDED_USE}</span>")
            cursor.insertBlock()
        scroll_to_end(self)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange) and self.shown:
            # The theme changed: links and muted text take their colours when written, so write them again.
            position = self.verticalScrollBar().value()
            self.show_conversation(self.shown)
            self.verticalScrollBar().setValue(position)

    # --- copy an answer, edit a question, regenerate the last answer ----------------------------------
    def turn_at(self, point: QPoint) -> StoredTurn | None:
        """The turn shown at this point of the viewport."""
        return self.turn_at_position(self.cursorForPosition(point).position())

    def turn_at_position(self, position: int) -> StoredTurn | None:
        """The turn at this position of the document."""
        turns = [turn for start, turn in self.turn_starts if start <= position]
        return turns[-1] if turns else None

    def menu_at(self, point: QPoint) -> QMenu:
        """The context menu at this point of the viewport: the turn's Copy answer and Edit question, then the usual
        text actions."""
        return self._with_turn_actions(self.createStandardContextMenu(point), self.turn_at(point))

    def keyboard_turn(self) -> tuple[StoredTurn | None, QPoint]:
        """The turn a menu from the keyboard is for, and where in the viewport to show it: the turn at the text
        cursor (a link reached with Tab, or where the text was clicked) while the cursor is in view, else the last
        turn in view; the menu drops from that spot."""
        cursor_rect = self.cursorRect()
        if self.viewport().rect().intersects(cursor_rect):
            return self.turn_at_position(self.textCursor().position()), cursor_rect.bottomLeft()
        bottom = self.viewport().rect().bottomLeft()
        turn = self.turn_at(bottom)
        start = next((start for start, shown in self.turn_starts if shown is turn), 0)
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        top = max(self.cursorRect(cursor).bottom(), 0)  # the turn's first line, or the top of the view
        return turn, QPoint(0, top)

    def keyboard_menu(self) -> QMenu:
        """The context menu the Menu key or Shift+F10 opens: that of the turn at the text cursor."""
        turn, _ = self.keyboard_turn()
        return self._with_turn_actions(self.createStandardContextMenu(), turn)

    def _with_turn_actions(self, menu: QMenu, turn: StoredTurn | None) -> QMenu:
        if turn is not None:
            first = menu.actions()[0] if menu.actions() else None
            copy = menu.addAction("Copy answer", lambda: self.copy_requested.emit(turn.id))
            copy.setEnabled(bool(turn.answer) and turn.id != self.answering)
            edit = menu.addAction("Edit question…", lambda: self.edit_requested.emit(turn.id))
            edit.setEnabled(self.answering is None)
            actions = [copy, edit]
            if turn is self.turn_starts[-1][1]:  # only the last answer is asked again
                regenerate = menu.addAction("Regenerate answer", self.regenerate_requested.emit)
                regenerate.setEnabled(self.answering is None)
                actions.append(regenerate)
            menu.insertActions(first, actions)
            menu.insertSeparator(first)
        return menu

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt override: the mouse's; see KeyboardMenu)
        self._show_menu(self.menu_at(event.pos()), event.globalPos())

    def menu_from_keyboard(self) -> None:
        _, where = self.keyboard_turn()
        self._show_menu(self.keyboard_menu(), self.viewport().mapToGlobal(where))

    @staticmethod
    def _show_menu(menu: QMenu, where: QPoint) -> None:
        menu.exec(where)
        menu.deleteLater()

    def _on_link(self, url: QUrl) -> None:
        if url.scheme() == "edit" and self.answering is None:
            self.edit_requested.emit(int(url.path()))
        elif url.scheme() == "copy":
            self.copy_requested.emit(int(url.path()))


def _link(action: str, turn_id: int, text: str) -> str:
    return f"<a href='{action}:{turn_id}' style='font-size:small; font-weight:normal'>{text}</a>"
