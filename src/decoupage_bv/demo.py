"""Demos that run the whole chain offline.

:func:`run_demo` builds the small real sample shipped with the package (the REU rows of three Finistère
communes, their outlines and constituencies; see ``sample/SOURCES.md``) and maps it.

:func:`run_synthetic` builds a synthetic territory generated in code, whose true polling stations are known,
and scores the result (the tests use it). Three square communes side by side with a street grid; each
commune is cut into known polling stations along streets; addresses sit along the streets, labelled with
the station they lie in, in the REU address-table format. A few rows are deliberately bad (no
coordinates, commune-centroid geocoding). The street axes are written too, so the street-aware method runs.
"""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from .evaluate import evaluate
from .outputs import check_outputs
from .pipeline import BuildResult, build
from .settings import Params

#: (INSEE code, name, BV grid: columns × rows) of the synthetic communes.
COMMUNES = (("99001", "Villeneuve-Démo", (3, 2)), ("99002", "Saint-Exemple", (2, 1)), ("99003", "Hameau", (1, 1)))
_SIDE = 2000.0  # metres
_STREET = 100.0
_ORIGIN = (640000.0, 6850000.0)  # Lambert-93, near Paris


def _cuts(n: int) -> np.ndarray:
    """Limits of *n* stations along one side, on street axes (the grid's streets are at 50, 150, … m)."""
    inner = [_STREET / 2 + _STREET * round((i * _SIDE / n - _STREET / 2) / _STREET) for i in range(1, n)]
    return np.array([0.0, *inner, _SIDE])


def synthetic_territory(seed: int = 0):
    """Return (roll in REU columns, communes, official BVs, street lines), all WGS84."""
    rng = np.random.default_rng(seed)
    com_rows, bv_rows, roll, lines = [], [], [], []
    streets = np.arange(_STREET / 2, _SIDE, _STREET)
    for k, (code, nom, (nx, ny)) in enumerate(COMMUNES):
        x0, y0 = _ORIGIN[0] + k * _SIDE, _ORIGIN[1]
        com_rows.append((code, nom, shapely.box(x0, y0, x0 + _SIDE, y0 + _SIDE)))
        lines += [shapely.LineString([(x0 + s, y0), (x0 + s, y0 + _SIDE)]) for s in streets]
        lines += [shapely.LineString([(x0, y0 + s), (x0 + _SIDE, y0 + s)]) for s in streets]
        cx, cy = _cuts(nx), _cuts(ny)
        for i in range(nx):
            for j in range(ny):
                n = 1 + i * ny + j
                bv_rows.append((code, f"{n:04d}", f"{code}_{n:04d}",
                                shapely.box(x0 + cx[i], y0 + cy[j], x0 + cx[i + 1], y0 + cy[j + 1])))
        # addresses along the streets, both sides, 8 m off the axis
        along = np.arange(10.0, _SIDE, 25.0)
        for s in streets:
            for side in (-8.0, 8.0):
                for horizontal in (True, False):
                    keep = rng.random(len(along)) < 0.7
                    a = along[keep]
                    xs = x0 + (a if horizontal else np.full(len(a), s + side))
                    ys = y0 + (np.full(len(a), s + side) if horizontal else a)
                    i = np.searchsorted(cx, xs - x0, side="right") - 1
                    j = np.searchsorted(cy, ys - y0, side="right") - 1
                    for xx, yy, n in zip(xs, ys, 1 + i * ny + j):
                        roll.append((f"{code}_{n}", code, xx, yy, "housenumber", round(0.9 + 0.09 * rng.random(), 2),
                                     int(rng.integers(1, 4))))
    df = pd.DataFrame(roll, columns=["id_brut_bv_reu", "code_commune_ref", "x", "y", "geo_type", "geo_score",
                                     "nb_adresses"])
    lon, lat = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True).transform(df["x"].values, df["y"].values)
    df = df.drop(columns=["x", "y"])
    df.insert(2, "longitude", np.round(lon, 7))
    df.insert(3, "latitude", np.round(lat, 7))
    bad = rng.choice(len(df), size=12, replace=False)
    df["longitude"] = df["longitude"].astype(object)
    df["latitude"] = df["latitude"].astype(object)
    df.loc[bad[:6], ["longitude", "latitude"]] = ""
    df.loc[bad[6:], "geo_type"] = "municipality"
    communes = gpd.GeoDataFrame(com_rows, columns=["code", "nom", "geometry"], crs="EPSG:2154").to_crs(4326)
    official = gpd.GeoDataFrame(bv_rows, columns=["code_insee", "code_bv", "id_bv", "geometry"],
                                crs="EPSG:2154").to_crs(4326)
    streets_gdf = gpd.GeoDataFrame({"geometry": lines}, crs="EPSG:2154").to_crs(4326)
    return df, communes, official, streets_gdf


SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample")


def sample_paths() -> dict:
    """The shipped real sample: ``addresses``, ``communes``, ``circonscriptions`` file paths."""
    return {"addresses": os.path.join(SAMPLE, "reu_29_sample.csv.gz"),
            "communes": os.path.join(SAMPLE, "communes_29_sample.geojson"),
            "circonscriptions": os.path.join(SAMPLE, "circonscriptions_29_sample.geojson")}


def run_demo(out_dir: str = "data/out/demo", params: Params = Params(), progress: bool = False) -> tuple:
    """Build the real Finistère sample, write the three formats, the report, a PNG and an HTML map of the
    addresses per polling station; returns (BuildResult, files)."""
    from .maps import draw

    outputs = [os.path.join(out_dir, f"bv_finistere_sample.{ext}") for ext in ("gpkg", "geojson", "shp")]
    maps = [os.path.join(out_dir, f"bv_finistere_sample_adresses.{ext}") for ext in ("png", "html")]
    check_outputs(outputs)
    check_outputs(maps, polygons=False)
    p = sample_paths()
    result = build(p["addresses"], p["communes"], dept="29", circonscriptions=p["circonscriptions"], params=params,
                   progress=progress)
    files = result.write(*outputs)
    drawn = result.polygons[result.polygons["code_bv"].notna()]
    for m in maps:
        draw(drawn, "n_adresses", m, title="Adresses par bureau de vote (REU 2022, échantillon)",
             label=outputs[0], **({} if m.endswith(".html") else
                                  {"source": "Polygons: decoupage-bv from the INSEE REU (2022) sample. "
                                             "Outlines: IGN ADMIN EXPRESS."}))
    return result, files + maps


def run_synthetic(out_dir: str = "data/out/demo", params: Params = Params(), progress: bool = False) -> tuple:
    """Write the synthetic inputs, build, write the outputs and evaluate; returns (BuildResult, scores, files)."""
    outputs = [os.path.join(out_dir, f"bv_demo.{ext}") for ext in ("gpkg", "geojson", "shp")]
    check_outputs(outputs)
    roll, communes, official, streets = synthetic_territory()
    rng = np.random.default_rng(1)
    test = rng.random(len(roll)) < 0.2
    roll_path = os.path.join(out_dir, "demo_adresses_reu.csv")
    roll[~test].to_csv(roll_path, index=False)
    test_path = os.path.join(out_dir, "demo_adresses_test.csv")
    roll[test].to_csv(test_path, index=False)
    com_path = os.path.join(out_dir, "demo_communes.geojson")
    communes.to_file(com_path, driver="GeoJSON")
    off_path = os.path.join(out_dir, "demo_official.geojson")
    official.to_file(off_path, driver="GeoJSON")
    streets_path = os.path.join(out_dir, "demo_streets.geojson")
    streets.to_file(streets_path, driver="GeoJSON")
    result: BuildResult = build(roll_path, com_path, params=params, progress=progress, streets=streets_path)
    files = result.write(*outputs)
    scores = evaluate(result.polygons, official, test_addresses=test_path)
    return result, scores, files
