"""Street lines and the blocks they enclose, for the street-aware method.

Blocks (enclosures) are the faces of the street network inside a commune. :func:`blocks.split_blocks`
then gives a block holding one BV's addresses to it whole, splits a mixed block by the Voronoi cells of its
own addresses (and street-side guides), and splits a block without addresses among the pieces around it.
BV limits so run along street axes wherever the addresses allow it.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from ._errors import InputError
from .sources import read_vector


def read_streets(path_or_gdf, crs: str) -> np.ndarray:
    """Street (and barrier) lines as an array of LineStrings in *crs*, from a file or GeoDataFrame."""
    gdf = path_or_gdf if isinstance(path_or_gdf, gpd.GeoDataFrame) else read_vector(path_or_gdf)
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise InputError(f"{path_or_gdf}: no geometry; give a line layer (GeoPackage, GeoJSON, Shapefile)")
    if gdf.crs is None:
        raise InputError(f"{path_or_gdf}: the street layer has no CRS; set it (e.g. EPSG:4326) before use")
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
