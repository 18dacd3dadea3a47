"""Headless offscreen rendering of one MjModel/MjData, shared by the backends.

MuJoCo picks its OpenGL platform from MUJOCO_GL when `mujoco` is first imported, and PyOpenGL
fixes its platform when OpenGL is first imported. This module chooses the GL context class itself,
at the first render, so rendering works whether or not MUJOCO_GL was set before `import mujoco`:

* MUJOCO_GL=egl / osmesa / glfw (or glx) is honoured when set;
* otherwise, with a DISPLAY (or WAYLAND_DISPLAY), glfw; without one, EGL when libEGL is
  installed, else OSMesa when libOSMesa is installed.

Debian packages for headless rendering (CI):
* EGL (preferred, Mesa llvmpipe in software when there is no GPU): libegl1 libgl1 libgl1-mesa-dri
  (libegl1 pulls in libegl-mesa0, the Mesa EGL vendor library);
* OSMesa (fallback, MUJOCO_GL=osmesa): libosmesa6.
The platform cannot be switched within one process once OpenGL has been imported.
"""

from __future__ import annotations

import atexit
import ctypes.util
import os
import weakref
from typing import Any

import numpy as np

EGL_PACKAGES = "libegl1 libgl1 libgl1-mesa-dri"
OSMESA_PACKAGES = "libosmesa6"
_INSTALL_HINT = (
    f"For headless rendering install the Debian packages `{EGL_PACKAGES}` (MUJOCO_GL=egl) or "
    f"`{OSMESA_PACKAGES}` (MUJOCO_GL=osmesa), e.g. `apt-get install -y {EGL_PACKAGES}`, and set "
    "MUJOCO_GL before Python starts."
)


# renderers still open, closed at exit while the GL libraries are still loaded (else the GL
# contexts' own __del__ runs during interpreter teardown and prints errors)
_OPEN: weakref.WeakSet[OffscreenRenderer] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for renderer in list(_OPEN):
        try:
            renderer.close()
        except Exception:
            pass


class HeadlessGLUnavailable(RuntimeError):
    """No OpenGL platform could be initialised for offscreen rendering."""


def resolve_gl_platform() -> str:
    """The GL platform rendering will use: 'egl', 'osmesa' or 'glfw'."""
    env = os.environ.get("MUJOCO_GL", "").lower().strip()
    if env in ("disable", "disabled", "off", "false", "0"):
        raise HeadlessGLUnavailable(f"rendering is disabled by MUJOCO_GL={env!r}")
    if env in ("egl", "osmesa", "glfw"):
        return env
    if env == "glx":
        return "glfw"
    pyopengl = os.environ.get("PYOPENGL_PLATFORM", "").lower().strip()
    if pyopengl in ("egl", "osmesa"):
        return pyopengl
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return "glfw"
    if ctypes.util.find_library("EGL"):
        return "egl"
    if ctypes.util.find_library("OSMesa"):
        return "osmesa"
    raise HeadlessGLUnavailable(
        "no display and neither libEGL nor libOSMesa is installed. " + _INSTALL_HINT
    )


def _gl_context_class(platform: str) -> Any:
    try:
        if platform == "egl":
            from mujoco.egl import GLContext
        elif platform == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            from mujoco.glfw import GLContext
    except Exception as err:  # ImportError, or PyOpenGL failing to load the libraries
        raise HeadlessGLUnavailable(
            f"cannot load the {platform!r} OpenGL platform ({type(err).__name__}: {err}). "
            + _INSTALL_HINT
        ) from err
    return GLContext


class OffscreenRenderer:
    """Renders RGB images of one model. Owns a GL context and an MjrContext; close() frees them.

    The model must stay alive and keep its sizes; its values (colours, sizes, ...) may change
    between renders, as when a batch writes one simulation's model into it.
    """

    def __init__(self, model: Any, max_width: int, max_height: int) -> None:
        import mujoco

        self._mujoco = mujoco
        self.platform = resolve_gl_platform()
        context_cls = _gl_context_class(self.platform)
        # the offscreen framebuffer is sized from the model's visual options
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), max_width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), max_height)
        self.max_width = int(model.vis.global_.offwidth)
        self.max_height = int(model.vis.global_.offheight)
        self._gl = None
        self._mjr = None
        try:
            self._gl = context_cls(self.max_width, self.max_height)
            self._gl.make_current()
            self._mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        except Exception as err:
            self.close()
            raise HeadlessGLUnavailable(
                f"could not create an OpenGL context with MUJOCO_GL platform {self.platform!r} "
                f"({type(err).__name__}: {err}). " + _INSTALL_HINT
            ) from err
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._mjr)
        self._model = model
        self._scene = mujoco.MjvScene(model, maxgeom=10000)
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        _OPEN.add(self)

    def render(self, data: Any, width: int, height: int, camera: Any) -> np.ndarray:
        """An (height, width, 3) uint8 image of `data` seen from the MjvCamera `camera`."""
        mujoco = self._mujoco
        if width > self.max_width or height > self.max_height:
            raise ValueError(
                f"image {width}x{height} exceeds the framebuffer {self.max_width}x{self.max_height}"
            )
        assert self._gl is not None and self._mjr is not None
        self._gl.make_current()
        mujoco.mjv_updateScene(
            self._model,
            data,
            self._option,
            self._perturb,
            camera,
            mujoco.mjtCatBit.mjCAT_ALL.value,
            self._scene,
        )
        viewport = mujoco.MjrRect(0, 0, width, height)
        mujoco.mjr_render(viewport, self._scene, self._mjr)
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(rgb, None, viewport, self._mjr)
        return np.ascontiguousarray(rgb[::-1])  # OpenGL rows run bottom-up

    def close(self) -> None:
        gl, self._gl = self._gl, None
        mjr, self._mjr = self._mjr, None
        if gl is not None:
            try:
                gl.make_current()
                if mjr is not None:
                    mjr.free()
            finally:
                gl.free()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
