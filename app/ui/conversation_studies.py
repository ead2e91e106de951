"""Conversations and the studies they are about, in the main window.

Where each study with conversations was opened from is kept in the store (its file or folder paths), so that
choosing a conversation of another study opens that study again when its files are still there, and says so when
they are not. An image of the study on screen goes into another study's conversation only when the user says so.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.studies.scan import Library
from app.ui.conversation_list import when


def study_key_of(store, series) -> str:
    """The store's key of a series' study: its StudyInstanceUID, or the file itself when it has none."""
    first = series.instances[0]
    return store.study_key(first.study_uid or str(first.path))


class ConversationStudies:
    def __init__(self, window):
        self.window = window
        self.store = window.store
        self.chat = window.chat
        self.sources: list[str] = []  # what the studies on screen were opened from
        self.keys: set[str] = set()  # the studies read from there
        self.reopening: str | None = None  # the study being opened again for a conversation
        self.accepted: set[tuple[int, str]] = set()  # (conversation, study on screen) the user let mix
        self.chat.conversations.other_study_opened.connect(self.reopen)
        self.chat.conversations_changed.connect(self.remember)

    def _say(self, text: str) -> None:
        self.window.statusBar().showMessage(text)

    # --- remembering where a study was opened from ----------------------------------------------
    def loaded(self, sources: list[str], content) -> None:
        """Files or folders were read: their studies that have conversations remember them (moved files too)."""
        self.sources = [str(Path(p).resolve()) for p in sources]
        if isinstance(content, Library):
            self.keys = {study_key_of(self.store, s) for s in content.all_series() if s.is_image}
        else:  # one plain image: it is on screen already
            self.keys = {self.store.study_key(self.sources[0])}
            self.reopening = None
        for key in self.keys:
            self.store.remember_sources(key, self.sources)

    def remember(self) -> None:
        """A conversation was started or changed: its study, when it is the one on screen, is remembered."""
        conversation = self.chat.conversation
        if conversation is not None and conversation.study_key in self.keys \
                and conversation.study_key == self.chat.study_key:
            self.store.remember_sources(conversation.study_key, self.sources)

    # --- opening a conversation of another study ------------------------------------------------
    def reopen(self, conversation_id: int, study_key: str) -> None:
        sources = self.store.sources(study_key)
        if not sources:
            self._say("This conversation's study is not open, and where it was opened from is not known: open its "
                      "files with File › Open to see them again.")
            return
        missing = [p for p in sources if not Path(p).exists()]
        if missing:
            self._say(f"This conversation's study is no longer where it was opened from ({missing[0]} is gone): "
                      "the conversation keeps its images as the model saw them.")
            return
        self.chat.conversations.want(study_key, conversation_id)
        self.reopening = study_key
        self.window.open_paths(sources)
        self._say(f"Opening this conversation's study again: {', '.join(Path(p).name for p in sources)}…")

    def wanted_series(self, series: list, shown):
        """After a read: the series to show for the study being opened again (None: keep what is shown)."""
        key, self.reopening = self.reopening, None
        if key is None or (shown is not None and study_key_of(self.store, shown) == key):
            return None
        wanted = next((s for s in series if study_key_of(self.store, s) == key), None)
        if wanted is None:
            self.chat.conversations.want(None)
            self._say("The files where this conversation's study was opened from hold another study now.")
        return wanted

    # --- attaching --------------------------------------------------------------------------------
    def confirm_attach(self) -> bool:
        """Before an image of the study on screen joins a conversation about another study: the user confirms
        (once per conversation and study), or starts a new conversation for it."""
        chat, conversation = self.chat, self.chat.conversation
        if conversation is None or conversation.study_key is None or conversation.study_key == chat.study_key \
                or (conversation.id, chat.study_key) in self.accepted:
            return True
        box = QMessageBox(QMessageBox.Icon.Question, "Another study's conversation",
                          f"“{conversation.title}” (started {when(conversation.created)}) is about another study. "
                          "Attach this image of the study on screen to it?", parent=self.window)
        box.setTextFormat(Qt.TextFormat.PlainText)  # the title is the user's or the model's text, never markup
        box.setInformativeText("The model then compares images of two studies in one conversation. A new "
                               "conversation asks about this study on its own.")
        attach = box.addButton("Attach to this conversation", QMessageBox.ButtonRole.AcceptRole)
        new = box.addButton("New conversation", QMessageBox.ButtonRole.ActionRole)
        box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))
        box.exec()
        if box.clickedButton() is attach:
            self.accepted.add((conversation.id, chat.study_key))
            return True
        if box.clickedButton() is new:
            chat.new_conversation()
            return chat.conversation is None
        self._say("Nothing attached: the conversation on screen is about another study.")
        return False
