"""Paths of the MJCF models (no simulator import here).

SCENE_XML is the full task scene: floor, Go1, skateboard, the FL foot tie (equality
``FL_foot_attach``) and the keyframes ``push`` and ``glide``. GO1_XML and SKATEBOARD_XML are the
parts it includes; each compiles on its own. Names inside the models match
envs/robots/go1.py and envs/robots/skateboard.py (tests/assets checks it).
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
GO1_XML = ASSETS_DIR / "go1" / "go1.xml"
SKATEBOARD_XML = ASSETS_DIR / "skateboard" / "skateboard.xml"
SCENE_XML = ASSETS_DIR / "scenes" / "go1_skateboard.xml"
SCENE_KEYFRAMES_XML = ASSETS_DIR / "scenes" / "go1_skateboard_keyframes.xml"
KEYFRAMES: tuple[str, ...] = ("push", "glide")

__all__ = ["ASSETS_DIR", "GO1_XML", "KEYFRAMES", "SCENE_KEYFRAMES_XML", "SCENE_XML", "SKATEBOARD_XML"]
