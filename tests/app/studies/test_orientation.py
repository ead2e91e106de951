"""Orientation letters follow the image's orientation and the view's rotation and flips."""

from app.studies.orientation import edge_letters
from app.studies.view import ViewState

AXIAL = (1, 0, 0, 0, 1, 0)  # rows run to the patient's left, columns to the back
CORONAL = (1, 0, 0, 0, 0, -1)


def test_axial_is_shown_as_radiologists_expect():
    assert edge_letters(AXIAL) == {"right": "L", "left": "R", "bottom": "P", "top": "A"}


def test_coronal():
    assert edge_letters(CORONAL) == {"right": "L", "left": "R", "bottom": "F", "top": "H"}


def test_rotation_and_flip_move_the_letters():
    assert edge_letters(AXIAL, ViewState(rotation=90)) == {"right": "A", "left": "P", "bottom": "L", "top": "R"}
    assert edge_letters(AXIAL, ViewState(flip_horizontal=True))["right"] == "R"


def test_oblique_gets_two_letters_and_missing_gets_none():
    assert edge_letters((0.8, 0.6, 0, 0, 0, -1))["right"] == "LP"
    assert edge_letters(None) is None
