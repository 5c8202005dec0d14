"""OpenStreetMap through osmnx: commune outlines (admin_level 8, arrondissements at 9) and street lines.

osmnx's settings are set here, in one place: its HTTP cache sits in the project's cache folder, and the
Overpass endpoint can be redirected (``DECOUPAGE_BV_OVERPASS_URL``) to a mirror or a local server.
"""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import codes
from ._errors import DownloadError
from ._http import _describe

#: Ways kept as block limits. Polling-station limits are street ranges, so blocks are bounded by the streets
#: that carry addresses (motorway … residential, living_street, pedestrian), and by rail lines and rivers or
#: canals, which no station straddles. Left out: service roads, footways, paths, cycleways, steps and tracks
#: (they cut courtyards, parks and car parks into blocks without addresses, not station limits), subways
#: (underground) and trams (they run along streets already kept). Tunnels and covered ways are dropped.
STREET_TAGS = {
    "highway": ["motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
                "living_street", "pedestrian", "motorway_link", "trunk_link", "primary_link", "secondary_link",
                "tertiary_link"],
    "railway": ["rail", "light_rail", "narrow_gauge"],
    "waterway": ["river", "canal"],
}
BOUNDARY_TAGS = {"boundary": "administrative", "admin_level": ["8", "9"]}


def _configure(cache_folder: str):
    import osmnx as ox

    ox.settings.cache_folder = os.path.join(cache_folder, "osmnx")
    ox.settings.use_cache = True
    ox.settings.log_console = False
    url = os.environ.get("DECOUPAGE_BV_OVERPASS_URL")
    if url:
        ox.settings.overpass_url = url
        ox.settings.overpass_rate_limit = False
        ox.settings.doh_url_template = None
    return ox


def _features(polygon, tags, cache_folder) -> gpd.GeoDataFrame:
    ox = _configure(cache_folder)
    try:
        f = ox.features_from_polygon(polygon, tags)
        return f[~f.index.duplicated(keep="first")].sort_index()  # sub-queries of a large area overlap
    except Exception as exc:  # osmnx raises its own and requests' errors
        raise DownloadError(f"OpenStreetMap (Overpass): {type(exc).__name__}: {_describe(exc)}") from None


def communes_from_osm(dept: str, area, cache_folder: str) -> gpd.GeoDataFrame:
    """Communes of *dept* (``code``, ``nom``, geometry, WGS84) from OSM boundaries within *area* (WGS84).

    Arrondissements of Paris, Lyon and Marseille come with their own codes (admin_level 9).
    """
    dept = codes.normalise_dept(dept)
    f = _features(area, BOUNDARY_TAGS, cache_folder)
    if "ref:INSEE" not in f.columns:
        raise DownloadError("OpenStreetMap answered no boundary with a ref:INSEE tag")
    f = f[f.geometry.geom_type.isin(["Polygon", "MultiPolygon"])].copy()
    f["code"] = f["ref:INSEE"].map(codes.normalise_commune)
    f = f[f["code"].notna() & (f["code"].map(lambda c: codes.dept_of_commune(c)) == dept)]
    level9 = f["admin_level"].astype(str) == "9"
    f = f[~level9 | f["code"].map(lambda c: codes.arrondissement_parent(c) is not None)]
    out = gpd.GeoDataFrame({"code": f["code"].to_numpy(), "nom": f.get("name", f["code"]).to_numpy()},
                           geometry=f.geometry.to_numpy(), crs=f.crs)
    if not len(out):
        raise DownloadError(f"OpenStreetMap answered no commune of département {dept}")
    return out.sort_values("code").reset_index(drop=True)


def streets_from_osm(area, cache_folder: str) -> gpd.GeoDataFrame:
    """Street, rail and waterway lines within *area* (WGS84) with their ``highway``/``railway``/``waterway``."""
    f = block_limits(_features(area, STREET_TAGS, cache_folder))
    cols = [c for c in ("name", "highway", "railway", "waterway") if c in f.columns]
    out = gpd.GeoDataFrame(pd.DataFrame(f[cols]).reset_index(drop=True).astype(object),
                           geometry=f.geometry.to_numpy(), crs=f.crs)
    if not len(out):
        raise DownloadError("OpenStreetMap answered no street in the area")
    return out


def block_limits(features: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The lines of OSM *features* that bound blocks (see :data:`STREET_TAGS`): wanted tags, above ground."""
    keep = np.zeros(len(features), dtype=bool)
    for key, values in STREET_TAGS.items():
        if key in features.columns:
            keep |= features[key].isin(values).to_numpy()
    for key in ("tunnel", "covered"):
        if key in features.columns:
            keep &= ~features[key].isin(["yes", "building_passage", "culvert"]).to_numpy()
    if "layer" in features.columns:
        keep &= ~(pd.to_numeric(features["layer"], errors="coerce") < 0).to_numpy()
    f = features[keep]
    return f[f.geometry.geom_type.isin(["LineString", "MultiLineString"])]


def area_of_points(lon, lat, margin: float = 0.01):
    """A WGS84 box around points (the area to ask OSM for)."""
    return shapely.box(min(lon) - margin, min(lat) - margin, max(lon) + margin, max(lat) + margin)
