"""Maps of a column of BV polygons: a static choropleth (PNG/PDF/SVG) and an interactive HTML page."""

from __future__ import annotations

import os

import geopandas as gpd
import pandas as pd

from ._errors import InputError, OutputError
from .outputs import atomic_write
from .evaluate import bv_keys

SCHEMES = ("quantiles", "equalinterval", "naturalbreaks", "fisherjenks", "headtailbreaks", "percentiles")
_TOOLTIP = ("nom_commune", "code_insee", "code_bv", "id_bv", "codeBureauVote", "llieu", "circonscription")


def _check_column(gdf: gpd.GeoDataFrame, column: str, path: str):
    if column not in gdf.columns:
        near = [c for c in gdf.columns if column.lower() in c.lower()][:8]
        raise InputError(f"{path}: no column {column!r}" + (f"; similar: {', '.join(near)}" if near else ""))
    values = pd.to_numeric(gdf[column], errors="coerce")
    if values.notna().sum() == 0:
        raise InputError(f"{path}: column {column!r} has no numeric value to map")
    return values


def commune_outlines(polygons: gpd.GeoDataFrame, communes: pd.Series) -> gpd.GeoSeries:
    """Commune outlines from BV polygons (metric CRS). Polygons from other sources leave slits between them
    that a plain dissolve keeps as stray strokes inside communes: a 1 m closing removes them."""
    return polygons.assign(_c=communes).dissolve("_c").buffer(1.0).buffer(-1.0)


def static_map(gdf: gpd.GeoDataFrame, column: str, path: str, title: str | None = None,
               scheme: str = "quantiles", k: int = 5, cmap: str = "viridis",
               source: str | None = None, label: str = "polygons"):
    """Choropleth of *column* classified with mapclassify (*scheme*, *k* classes), with commune outlines,
    legend, title and source line (default: the polygons' file name). The format follows *path*'s extension
    (png, pdf, svg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if scheme.lower() not in SCHEMES:
        raise InputError(f"unknown classification {scheme!r}: use one of {', '.join(SCHEMES)}")
    values = _check_column(gdf, column, label)
    data = gdf.assign(_v=values)
    if data.crs is not None and data.crs.is_geographic:
        data = data.to_crs(2154)
    fig, ax = plt.subplots(figsize=(9, 9))
    k = max(2, min(k, int(data["_v"].nunique())))
    data.plot(column="_v", ax=ax, scheme=scheme, k=k, cmap=cmap, linewidth=0.15, edgecolor="white", legend=True,
              legend_kwds={"title": column, "loc": "upper left", "bbox_to_anchor": (1.0, 1.0), "fmt": "{:.1f}",
                           "frameon": True},
              missing_kwds={"color": "lightgrey", "label": "no data", "hatch": "///"})
    communes = data.get("code_insee")
    if communes is None:
        try:
            communes = bv_keys(data, label).str[:5]
        except InputError:
            communes = None
    if communes is not None and communes.notna().any():
        commune_outlines(data, communes).boundary.plot(ax=ax, color="black", linewidth=0.6)
    ax.set_axis_off()
    ax.set_title(title or column, fontsize=14)
    if source is None:
        source = f"Polygons: {os.path.basename(label)}. Results: Ministère de l'Intérieur."
    fig.text(0.01, 0.01, source, fontsize=8, color="dimgrey")
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight"))
    plt.close(fig)


def interactive_map(gdf: gpd.GeoDataFrame, column: str, path: str, title: str | None = None,
                    scheme: str = "quantiles", k: int = 5, cmap: str = "viridis", label: str = "polygons"):
    """An HTML map (folium, through GeoDataFrame.explore) with a tooltip per BV."""
    values = _check_column(gdf, column, label)
    data = gdf.assign(**{column: values}).to_crs(4326)
    tooltip = [c for c in _TOOLTIP if c in data.columns] + [column]
    k = max(2, min(k, int(values.nunique())))
    m = data.explore(column=column, scheme=scheme, k=k, cmap=cmap, tooltip=tooltip, tiles="OpenStreetMap",
                     style_kwds={"weight": 0.5, "color": "white", "fillOpacity": 0.75}, legend=True,
                     legend_kwds={"caption": title or column, "colorbar": False})
    atomic_write(path, m.save)


def draw(gdf: gpd.GeoDataFrame, column: str, path: str, **kwargs):
    """Static or interactive map by *path*'s extension (``.html`` → interactive)."""
    if path.lower().endswith((".html", ".htm")):
        kwargs.pop("source", None)
        interactive_map(gdf, column, path, **kwargs)
    elif path.lower().endswith((".png", ".pdf", ".svg")):
        static_map(gdf, column, path, **kwargs)
    else:
        raise OutputError(f"{path}: unknown map format; use .png, .pdf, .svg or .html")
