"""Landmark files: CSV layouts, grand-challenge "Multiple points" JSON, pairing."""

from __future__ import annotations

import numpy as np
import pytest

from medarena.evaluators.registration import (
    Landmarks,
    pair_landmarks,
    parse_landmarks_csv,
    parse_landmarks_json,
)


def test_csv_with_header_and_ids():
    text = "name,x,y,z,comment\nb,1,2,3,ok\na,4.5,-5,6e1,\n"
    lm = parse_landmarks_csv(text)
    np.testing.assert_array_equal(lm.points, [[1, 2, 3], [4.5, -5, 60]])
    assert lm.ids == ("b", "a")


def test_csv_without_header():
    assert parse_landmarks_csv("1,2,3\n4,5,6\n").ids is None
    lm = parse_landmarks_csv("p1 1 2 3\np2 4 5 6\n")
    assert lm.ids == ("p1", "p2") and lm.points[1, 2] == 6.0
    with pytest.raises(ValueError, match="fixed.csv: row 2"):
        parse_landmarks_csv("1,2,3\n4,x,6\n", "fixed.csv")


def test_grand_challenge_multiple_points():
    doc = {"type": "Multiple points", "version": {"major": 1, "minor": 0},
           "points": [{"name": "carina", "point": [1, 2, 3]}, {"name": "apex", "point": [4, 5, 6]}]}
    lm = parse_landmarks_json(doc)
    assert lm.ids == ("carina", "apex") and lm.points.shape == (2, 3)
    unnamed = {"points": [{"point": [1, 2, 3]}, {"point": [4, 5, 6]}]}
    assert parse_landmarks_json(unnamed).ids is None
    with pytest.raises(ValueError, match="no \"points\""):
        parse_landmarks_json({"type": "Multiple points"})


def test_pairing_by_id_and_by_row():
    fixed = Landmarks(np.array([[0.0, 0, 0], [1, 1, 1]]), ("a", "b"))
    moving = Landmarks(np.array([[9.0, 9, 9], [1, 1, 2], [0, 0, 1]]), ("c", "b", "a"))
    f, m, ids = pair_landmarks(fixed, moving)
    np.testing.assert_array_equal(m, [[0, 0, 1], [1, 1, 2]])
    assert ids == ("a", "b")
    f, m, ids = pair_landmarks(Landmarks(fixed.points), Landmarks(moving.points[:2]))
    assert ids == ("1", "2") and m[0, 0] == 9.0


def test_pairing_errors():
    with pytest.raises(ValueError, match="2 fixed and 3 moving landmarks, and no ids"):
        pair_landmarks(Landmarks(np.zeros((2, 3))), Landmarks(np.zeros((3, 3))))
    with pytest.raises(ValueError, match="without a moving landmark: b"):
        pair_landmarks(Landmarks(np.zeros((2, 3)), ("a", "b")), Landmarks(np.zeros((1, 3)), ("a",)))
