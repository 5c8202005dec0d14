"""Write polygons (GeoPackage, GeoJSON, Shapefile) and the build report, atomically and reproducibly."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import geopandas as gpd
import pyogrio

from ._errors import OutputError
from .attributes import SHAPEFILE_FIELDS

FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile"}
_SHP_SIDECARS = (".dbf", ".shx", ".prj", ".cpg", ".shp")
# Fixed dates so that the same input gives byte-identical files (GeoPackage last_change, DBF header).
_FIXED_DATE = "2000-01-01T00:00:00.000Z"


def format_of(path: str) -> str:
    """GDAL driver for an output path, from its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise OutputError(f"{path}: unknown output format {ext!r}; use .gpkg, .geojson or .shp")
    return FORMATS[ext]


def report_path(path: str) -> str:
    """Where the build report of an output goes: ``bv_29.gpkg`` → ``bv_29.report.json``."""
    return os.path.splitext(path)[0] + ".report.json"


def write_polygons(gdf: gpd.GeoDataFrame, path: str, layer: str = "bureaux_de_vote") -> None:
    """Write *gdf* to *path* (format from the extension); the file appears whole or not at all.

    GeoJSON is written in WGS84 per RFC 7946; GeoPackage and Shapefile keep the metric CRS. Shapefile
    columns are renamed to :data:`attributes.SHAPEFILE_FIELDS` and a UTF-8 ``.cpg`` is written.
    """
    driver = format_of(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create folder ({exc.strerror})") from None
    stem, ext = os.path.splitext(os.path.basename(path))
    tmpdir = tempfile.mkdtemp(prefix=f".{stem}.", dir=folder)
    try:
        tmp = os.path.join(tmpdir, stem + ext)
        kwargs = {}
        data = gdf
        if driver == "GeoJSON":
            data = gdf.to_crs("EPSG:4326")
            kwargs = {"layer_options": {"RFC7946": "YES", "WRITE_NAME": "NO"}}
        elif driver == "ESRI Shapefile":
            data = gdf.rename(columns=SHAPEFILE_FIELDS)
            kwargs = {"layer_options": {"ENCODING": "UTF-8", "DBF_DATE_LAST_UPDATE": _FIXED_DATE[:10]}}
        else:
            kwargs = {"layer": layer}
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _FIXED_DATE})
        try:
            pyogrio.write_dataframe(data, tmp, driver=driver, **kwargs)
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
        if driver == "ESRI Shapefile":
            for sidecar in _SHP_SIDECARS:  # .shp last: readers look for it first
                src = os.path.join(tmpdir, stem + sidecar)
                if os.path.exists(src):
                    os.replace(src, os.path.splitext(path)[0] + sidecar)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside *path*, then rename it to *path*."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp.", suffix=os.path.splitext(path)[1], dir=folder)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(data: dict, path: str) -> None:
    """Write JSON atomically, keys in a stable order."""

    def dump(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=2)
            fh.write("\n")

    atomic_write(path, dump)


def write_csv(df, path: str) -> None:
    """Write a DataFrame as UTF-8 CSV atomically."""
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
