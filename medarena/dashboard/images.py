"""Case images for the drill-down: slices read straight from the zarr stores (only the chunks a
slice needs) and drawn with matplotlib, the prediction and reference as coloured contours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from medarena.services.browse import case_node  # noqa: E402

MASK_KINDS = ("segmentation", "heat-map")
PREDICTION_COLOURS = ("#ff3b30", "#ff9500", "#ffcc00", "#af52de")
REFERENCE_COLOURS = ("#34c759", "#00c7be", "#30b0c7", "#5ac8fa")
AXES = {"axial": 0, "coronal": 1, "sagittal": 2}


class MissingStore(LookupError):
    """A store, case or socket that is not there (not ingested, no prediction written)."""


@dataclass(frozen=True)
class Volume:
    """Where one image socket of one case lives, and its shape (spatial axes first)."""

    store_url: str
    case: str
    socket: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]

    @property
    def ndim(self) -> int:
        return len(self.spacing)


def open_volume(store_url: str, case: str, socket: str) -> Volume:
    try:
        node = case_node(store_url, case, socket)
    except PermissionError as exc:  # an object store that refuses the site's credentials
        raise MissingStore(f"the store refused access ({str(exc)[:200]})") from exc
    except Exception as exc:  # zarr raises several kinds for missing paths
        raise MissingStore(f"no {socket!r} for case {case!r} in {store_url}") from exc
    attrs = dict(node.attrs)
    if attrs.get("kind") == "json" or not hasattr(node, "shape"):
        raise MissingStore(f"{socket!r} of case {case!r} is not an image")
    spacing = tuple(float(s) for s in attrs.get("spacing", ())) or (1.0,) * min(len(node.shape), 3)
    return Volume(store_url, case, socket, tuple(node.shape), spacing)


def read_json(store_url: str, case: str, socket: str) -> Any:
    try:
        return dict(case_node(store_url, case, socket).attrs).get("value")
    except Exception as exc:
        raise MissingStore(f"no {socket!r} for case {case!r} in {store_url}") from exc


def slice_count(volume: Volume, axis: int) -> int:
    return volume.shape[axis] if volume.ndim == 3 else 1


def read_slice(volume: Volume, axis: int = 0, index: int | None = None) -> np.ndarray:
    """A 2D plane (plus colour/vector components, if any) of a 2D or 3D image; a 3D image is cut
    at ``index`` along ``axis`` (the middle when None)."""
    node = case_node(volume.store_url, volume.case, volume.socket)
    if volume.ndim == 2:
        return np.asarray(node[...])
    index = volume.shape[axis] // 2 if index is None else index
    where: list[Any] = [slice(None)] * len(volume.shape)
    where[axis] = index
    return np.asarray(node[tuple(where)])


def plane_spacing(volume: Volume, axis: int) -> tuple[float, float]:
    if volume.ndim == 2:
        return volume.spacing[0], volume.spacing[1]
    rows, cols = [s for i, s in enumerate(volume.spacing) if i != axis]
    return rows, cols


def display_plane(plane: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """Coronal and sagittal planes are stored with z down the rows from the first slice; flip them
    so that the head is up (LPS z grows towards the head)."""
    return plane[::-1] if ndim == 3 and axis != 0 else plane


def window(plane: np.ndarray) -> np.ndarray:
    """Grey values scaled to [0, 1] between the 1st and 99th percentile (a robust auto window)."""
    values = plane.astype(np.float32)
    if values.ndim == 3 and values.shape[-1] in (3, 4):  # a colour image: scale as a whole
        lo, hi = float(values.min()), float(values.max())
    else:
        finite = values[np.isfinite(values)]
        lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    return np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(values)


@dataclass(frozen=True)
class Overlay:
    name: str
    plane: np.ndarray
    kind: str  # "segmentation" (contours per label) or "heat-map" (translucent)
    colour: str


def render(background: np.ndarray, overlays: list[Overlay], spacing: tuple[float, float],
           title: str = "") -> Figure:
    """The windowed background with each overlay: label maps as contours, heat maps as colour."""
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    shown = window(background)
    ax.imshow(shown, cmap=None if shown.ndim == 3 else "gray", interpolation="nearest",
              aspect=spacing[0] / spacing[1])
    handles = []
    for overlay in overlays:
        plane = np.asarray(overlay.plane)
        if plane.shape[:2] != background.shape[:2]:
            continue
        if overlay.kind == "heat-map":
            ax.imshow(np.ma.masked_less_equal(plane.astype(float), 0), cmap="inferno", alpha=0.45,
                      interpolation="nearest", aspect=spacing[0] / spacing[1])
        else:
            for label in np.unique(plane[plane > 0]):
                ax.contour(plane == label, levels=[0.5], colors=[overlay.colour], linewidths=1.4)
        handles.append(Line2D([0], [0], color=overlay.colour, lw=2, label=overlay.name))
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.7)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    return fig


def image_sockets(sockets: list[dict[str, Any]], kinds: tuple[str, ...]) -> list[str]:
    return [s["slug"] for s in sockets if s.get("kind") in kinds]
