"""Fixtures of the app's widget tests."""

from __future__ import annotations

import pytest

from app.ui.viewer import Viewer
from tests.support.teaching_study import conversation, study  # noqa: F401 (fixtures: a planted study, its chat)


@pytest.fixture
def viewer(qtbot):
    v = Viewer()
    qtbot.addWidget(v)
    v.resize(600, 600)
    v.show()
    return v
