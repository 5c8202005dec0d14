"""Write polygons (GeoPackage, GeoJSON, Shapefile) and the build report, atomically and reproducibly."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import geopandas as gpd
import pyogrio
import shapely

from ._errors import OutputError
from .attributes import SHAPEFILE_FIELDS

FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile",
           ".parquet": "GeoParquet"}
_SHP_SIDECARS = (".dbf", ".shx", ".prj", ".cpg", ".shp")
# Fixed dates so that the same input gives byte-identical files (GeoPackage last_change, DBF header).
_FIXED_DATE = "2000-01-01T00:00:00.000Z"


def format_of(path: str) -> str:
    """GDAL driver for an output path, from its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise OutputError(f"{path}: unknown output format {ext!r}; use .gpkg, .geojson, .shp or .parquet")
    return FORMATS[ext]


def report_path(path: str) -> str:
    """Where the build report of an output goes: ``bv_29.gpkg`` → ``bv_29.report.json``."""
    return os.path.splitext(path)[0] + ".report.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _follow_umask(path: str) -> None:
    """Temporary files are created 0600; a finished output gets the mode of any file the user creates."""
    os.chmod(path, 0o666 & ~_umask())


def check_outputs(paths, polygons: bool = True) -> None:
    """Fail before any work when an output cannot be written: unknown extension, a folder in the way,
    or no write permission where it would go."""
    for path in paths:
        if polygons:
            format_of(path)
        if os.path.isdir(path):
            raise OutputError(f"{path}: is a folder, not a file")
        folder = os.path.dirname(os.path.abspath(path))
        existing = folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise OutputError(f"{path}: cannot write ({existing} is a file, not a folder)")
        try:  # the only sure test (permissions, read-only or special file systems, quotas): try
            os.makedirs(folder, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
            os.close(fd)
            os.remove(probe)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise OutputError(f"{path}: cannot write (Permission denied)")


def check_build_outputs(paths) -> list[str]:
    """:func:`check_outputs` for polygon files and the reports beside them; returns the report paths."""
    reports = sorted({report_path(p) for p in paths})
    check_outputs(paths)
    check_outputs(reports, polygons=False)
    return reports


class OutputSet:
    """Files that appear together or not at all: each is written to a temporary name beside its target,
    and all are renamed into place only when every one of them is whole.

    >>> with OutputSet() as out:
    ...     out.polygons(gdf, "bv.gpkg")
    ...     out.json(report, "bv.report.json")
    """

    def __init__(self):
        self._moves: list[tuple[str, str]] = []
        self._tmpdirs: list[str] = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._commit()
        finally:
            for d in self._tmpdirs:
                shutil.rmtree(d, ignore_errors=True)
        return False

    def _tmpdir(self, path: str) -> str:
        folder = os.path.dirname(os.path.abspath(path))
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            os.makedirs(folder, exist_ok=True)
            d = tempfile.mkdtemp(prefix=f".{stem}.", dir=folder)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        self._tmpdirs.append(d)
        return d

    def file(self, path: str, write) -> None:
        """Stage ``write(tmp)`` for *path*."""
        tmp = os.path.join(self._tmpdir(path), os.path.basename(path))
        try:
            write(tmp)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        self._moves.append((tmp, path))

    def polygons(self, gdf: gpd.GeoDataFrame, path: str, layer: str = "bureaux_de_vote") -> None:
        """Stage *gdf* for *path* (format from the extension); see :func:`write_polygons`."""
        driver = format_of(path)
        tmpdir = self._tmpdir(path)
        stem, ext = os.path.splitext(os.path.basename(path))
        tmp = os.path.join(tmpdir, stem + ext)
        data, kwargs = gdf, {"layer": layer}
        if driver == "GeoParquet":  # GeoParquet 1.x through geopandas/pyarrow: no timestamp in the file
            try:
                gdf.to_parquet(tmp, index=False, compression="zstd")
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
            self._moves.append((tmp, path))
            return
        if driver == "GeoJSON":
            data = shared_edges_to_wgs84(gdf)
            kwargs = {"layer_options": {"RFC7946": "YES", "WRITE_NAME": "NO"}}
        elif driver == "ESRI Shapefile":
            data = gdf.rename(columns=SHAPEFILE_FIELDS)
            kwargs = {"layer_options": {"ENCODING": "UTF-8", "DBF_DATE_LAST_UPDATE": _FIXED_DATE[:10]}}
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _FIXED_DATE})
        try:
            pyogrio.write_dataframe(data, tmp, driver=driver, **kwargs)
        except (OSError, pyogrio.errors.DataSourceError) as exc:
            raise OutputError(f"{path}: cannot write ({getattr(exc, 'strerror', None) or exc})") from None
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
        if driver == "ESRI Shapefile":  # .shp last: readers look for it first
            for sidecar in _SHP_SIDECARS:
                src = os.path.join(tmpdir, stem + sidecar)
                if os.path.exists(src):
                    self._moves.append((src, os.path.splitext(path)[0] + sidecar))
        else:
            self._moves.append((tmp, path))

    def json(self, data: dict, path: str) -> None:
        def dump(tmp):
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, indent=2)
                fh.write("\n")

        self.file(path, dump)

    def csv(self, df, path: str) -> None:
        self.file(path, lambda tmp: df.to_csv(tmp, index=False))

    def _commit(self) -> None:
        for tmp, path in self._moves:
            try:
                _follow_umask(tmp)
                os.replace(tmp, path)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def shared_edges_to_wgs84(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Reproject to WGS84 keeping shared edges shared. GDAL rounds RFC 7946 coordinates to 7 decimals; a
    vertex that lies on a neighbour's edge without being one of its vertices then moves off it, and the two
    polygons overlap or gap. Cleaning the coverage makes every shared edge carry the same vertices on both
    sides, and the same vertex rounds to the same place; slits narrower than about 10 cm between neighbours
    (commune outlines that do not quite meet) are closed, since rounding would make them cross."""
    out = gdf.to_crs("EPSG:4326")
    geoms = out.geometry.values
    ok = ~(shapely.is_empty(geoms) | shapely.is_missing(geoms))
    if ok.sum() > 1:
        geoms = geoms.copy()
        cleaned = shapely.coverage_clean(geoms[ok], gap_width=1e-6, snapping_distance=0)
        geoms[ok] = shapely.set_precision(cleaned, 1e-7, mode="pointwise")
        out = out.set_geometry(geoms)
    return out


def write_polygons(gdf: gpd.GeoDataFrame, path: str, layer: str = "bureaux_de_vote") -> None:
    """Write *gdf* to *path* (format from the extension); the file appears whole or not at all.

    GeoJSON is written in WGS84 per RFC 7946 with shared edges kept shared; GeoPackage and Shapefile keep the
    metric CRS. Shapefile columns are renamed to :data:`attributes.SHAPEFILE_FIELDS` and a UTF-8 ``.cpg`` is
    written.
    """
    with OutputSet() as out:
        out.polygons(gdf, path, layer)


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside *path*, then rename it to *path*."""
    with OutputSet() as out:
        out.file(path, write)


def write_json(data: dict, path: str) -> None:
    """Write JSON atomically, keys in a stable order."""
    with OutputSet() as out:
        out.json(data, path)


def write_csv(df, path: str) -> None:
    """Write a DataFrame as UTF-8 CSV atomically."""
    with OutputSet() as out:
        out.csv(df, path)
