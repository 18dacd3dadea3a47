"""Skateboard constants: names in assets/skateboard and the board's nominal parameters."""

from __future__ import annotations

DECK_BODY = "deck"
BOARD_ROOT_JOINT = "board_root"
TRUCK_JOINTS: tuple[str, ...] = ("front_truck", "rear_truck")
WHEELS: tuple[str, ...] = ("FL", "FR", "RL", "RR")  # board corners: front-left, front-right, ...
WHEEL_JOINTS: tuple[str, ...] = tuple(f"wheel_{w}" for w in WHEELS)
WHEEL_GEOMS: tuple[str, ...] = tuple(f"wheel_{w}_geom" for w in WHEELS)
WHEEL_TOUCH_SENSORS: tuple[str, ...] = tuple(f"wheel_{w}_touch" for w in WHEELS)
DECK_GEOM = "deck_geom"
# Foot target markers on the deck (sites), one per Go1 leg in go1.LEGS order.
MARKER_SITES: tuple[str, ...] = ("FR_marker", "FL_marker", "RR_marker", "RL_marker")
# The equality constraint that ties the Go1's FL foot to the deck; a free-board task switches it off.
FOOT_ATTACH_EQUALITY = "FL_foot_attach"
FOOT_MOUNT_SITE = "FL_mount"

WHEEL_RADIUS = 0.03
DECK_SIZE = (0.75, 0.25, 0.02)  # length, width, thickness (m)
