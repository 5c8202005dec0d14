"""Small geometry helpers shared by the tessellation and the joins: valid polygons out of clipping, fast
MultiPoints, unions of pieces that tile, point-to-segment distances."""

from __future__ import annotations

import struct

import numpy as np
import shapely


def multipoint(xy: np.ndarray):
    """One MultiPoint of *xy* through WKB: ``shapely.multipoints`` makes a Point object per row first (5x slower)."""
    rec = np.empty(len(xy), dtype=[("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
    rec["order"], rec["type"], rec["x"], rec["y"] = 1, 1, xy[:, 0], xy[:, 1]
    return shapely.from_wkb(struct.pack("<BII", 1, 4, len(xy)) + rec.tobytes())


def union_of_tiles(geoms: np.ndarray):
    """Union of pieces that tile: ``coverage_union_all`` (fast), or ``union_all`` when GEOS finds their
    shared edges not exactly noded (it refuses them rather than guess)."""
    try:
        return shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:
        return shapely.union_all(geoms)


def polygon_parts(geom) -> list:
    """The non-empty polygons of *geom* (lines and points left out)."""
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]


def tidy(geom):
    """Valid polygonal geometry: drop the lines and points that clipping can leave."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = polygon_parts(geom)
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def tidy_all(geoms: np.ndarray) -> np.ndarray:
    """:func:`tidy` over an array; valid polygons, nearly all of them, pass through untouched."""
    fine = shapely.is_valid(geoms) & (shapely.get_type_id(geoms) == 3) & ~shapely.is_empty(geoms)
    out = geoms.copy()
    for i in np.flatnonzero(~fine):
        out[i] = tidy(geoms[i])
    return out


def segment_distance(a: np.ndarray, d: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Distance from each point of *p* to the segment from *a* to *a* + *d* (row by row, or one segment
    for all when *a* and *d* have one row)."""
    t = np.clip(((p - a) * d).sum(axis=1) / np.maximum((d * d).sum(axis=1), 1e-12), 0, 1)
    return np.hypot(*(p - a - t[:, None] * d).T)
