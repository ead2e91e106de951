"""Which thread destroys a Qt object: Qt objects must end on their own (the GUI) thread, never on a worker."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt


def destroyed_on(obj: QObject) -> list[str]:
    """A list that gets the name of the thread that destroys `obj`, when it does (connected directly, so the name
    is that thread's, not the receiver's)."""
    threads: list[str] = []
    obj.destroyed.connect(lambda *_: threads.append(threading.current_thread().name),
                          Qt.ConnectionType.DirectConnection)
    return threads
