"""Street-aware tessellation: BV limits follow street axes where the addresses allow it.

Blocks (enclosures) are the faces of the street network inside a commune. A block whose addresses belong
(almost) all to one BV goes to it whole; a mixed block is split by the Voronoi cells of its addresses; a
block without addresses goes to the neighbour sharing the longest border with it. Voronoi pieces are the
base layer, so the result tiles the commune like plain Voronoi does.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely import STRtree

from ._errors import InputError
from .sources import read_vector


def read_streets(path_or_gdf, crs: str) -> np.ndarray:
    """Street (and barrier) lines as an array of LineStrings in *crs*, from a file or GeoDataFrame."""
    gdf = path_or_gdf if isinstance(path_or_gdf, gpd.GeoDataFrame) else read_vector(path_or_gdf)
    gdf = gdf[gdf.geometry.notna()].to_crs(crs)
    lines = shapely.get_parts(shapely.line_merge(shapely.get_parts(gdf.geometry.values)))
    lines = lines[np.isin(shapely.get_type_id(lines), [1, 2])]  # LineString, LinearRing
    if not len(lines):
        raise InputError(f"{path_or_gdf}: no line geometry")
    return lines


def enclosures(polygon, lines: np.ndarray) -> np.ndarray:
    """Faces of the street lines and the commune outline, inside the commune."""
    if len(lines) == 0:
        return np.array([polygon], dtype=object)
    # node whole lines with the outline (clipped lines would end a hair off it and dangle)
    noded = shapely.union_all(np.append(lines, shapely.boundary(polygon)))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    inside = shapely.contains_xy(polygon, *shapely.get_coordinates(shapely.point_on_surface(faces)).T)
    return faces[inside]


def assign_blocks(polygon, pieces: dict, blocks: np.ndarray, xy: np.ndarray, labels: np.ndarray,
                  weights: np.ndarray, purity: float = 0.9) -> dict:
    """Re-label the Voronoi *pieces* block by block; returns ``{label: geometry}``."""
    if len(blocks) <= 1 or len(pieces) <= 1:
        return pieces
    labs = np.array(sorted(pieces))
    geoms = np.array([pieces[lab] for lab in labs], dtype=object)
    btree = STRtree(blocks)
    pi, bi = btree.query(shapely.points(xy), predicate="intersects")
    first = np.unique(pi, return_index=True)[1]
    pi, bi = pi[first], bi[first]
    owner = np.full(len(blocks), None, dtype=object)
    pure = np.zeros(len(blocks), dtype=bool)
    for b in np.unique(bi):
        sel = pi[bi == b]
        w = {}
        for lab, wt in zip(labels[sel], weights[sel]):
            w[lab] = w.get(lab, 0.0) + wt
        top = max(sorted(w), key=lambda k: w[k])
        if w[top] >= purity * sum(w.values()):
            owner[b], pure[b] = top, True
        else:
            owner[b] = "mixed"
    # a BV outvoted in every block it has addresses in would vanish: split those blocks by Voronoi instead
    kept = set(owner[owner != None]) | {lab for b in np.flatnonzero(owner == "mixed")  # noqa: E711
                                        for lab in labels[pi[bi == b]]}
    for lab in sorted(set(labels[pi]) - kept):
        owner[np.unique(bi[labels[pi] == lab])] = "mixed"
    empty = np.flatnonzero(owner == None)  # noqa: E711  (object array)
    # empty blocks: the neighbour (pure block, or the Voronoi piece across a mixed block) with the longest border
    rings = shapely.boundary(blocks)
    for _ in range(8):
        if not len(empty):
            break
        left = []
        for b in empty:
            near = btree.query(blocks[b], predicate="dwithin", distance=1e-6)
            shared = {}
            for j in near:
                if j == b or owner[j] is None or owner[j] == "mixed":
                    continue
                length = shapely.length(shapely.intersection(rings[b], shapely.buffer(blocks[j], 1e-6)))
                shared[owner[j]] = shared.get(owner[j], 0.0) + length
            if shared:
                owner[b] = max(sorted(shared), key=lambda k: shared[k])
            else:
                left.append(b)
        if len(left) == len(empty):
            break
        empty = np.array(left, dtype=int)
    parts: dict = {lab: [] for lab in labs}
    ptree = STRtree(geoms)
    for b, blk in enumerate(blocks):
        if owner[b] is not None and owner[b] != "mixed":
            parts[owner[b]].append(blk)
        else:  # mixed, or an empty block with no decided neighbour: Voronoi inside the block
            for j in ptree.query(blk, predicate="intersects"):
                piece = shapely.intersection(blk, geoms[j])
                if not piece.is_empty and piece.area > 0:
                    parts[labs[j]].append(piece)
    covered = shapely.union_all(blocks)
    rest = shapely.difference(polygon, covered)
    if not rest.is_empty and rest.area > 0:
        for j, lab in enumerate(labs):
            piece = shapely.intersection(rest, geoms[j])
            if not piece.is_empty and piece.area > 0:
                parts[lab].append(piece)
    out = {}
    for lab in labs:
        if parts[lab]:
            out[lab] = shapely.union_all(parts[lab])
    return out
