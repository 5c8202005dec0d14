import os

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

# ../shared/data, unless DECOUPAGE_BV_DATA says otherwise (as bench/ does)
DATA = os.environ.get("DECOUPAGE_BV_DATA") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """OpenStreetMap is fetched by default: point it at a closed local port unless a test serves it."""
    monkeypatch.setenv("DECOUPAGE_BV_OVERPASS_URL", "http://127.0.0.1:9/api")


def data(*parts):
    path = os.path.join(DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"shared data missing: {path}")
    return path


_DEV_ROLES = {"count": "nb_adresses", "address": "geo_adresse", "electors": "nb_electeurs"}


def dev_roll(name, *roles):
    """A dev set's ``roll.csv`` (``paris_dev``, ``paris2012_dev``) in canonical columns: ``bv``, ``commune``,
    ``lon``, ``lat``, and those of *roles* asked for (``count``, ``address``, ``electors``)."""
    columns = {"id_brut_bv_reu": "bv", "code_commune_ref": "commune", "longitude": "lon", "latitude": "lat"}
    columns.update({_DEV_ROLES[r]: r for r in roles})
    return pd.read_csv(data(name, "roll.csv"), dtype=str).rename(columns=columns)


def square_communes(specs, crs="EPSG:2154"):
    """GeoDataFrame (WGS84) of squares: specs = [(code, nom, x0, y0, side)] in *crs*."""
    rows = [(c, n, shapely.box(x, y, x + s, y + s)) for c, n, x, y, s in specs]
    return gpd.GeoDataFrame(rows, columns=["code", "nom", "geometry"], crs=crs).to_crs(4326)


def roll_rows(rows, crs="EPSG:2154"):
    """Canonical roll DataFrame from [(bv, commune, x, y[, geo_type, score, count])] in *crs*."""
    t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    out = []
    for r in rows:
        bv, com, x, y = r[:4]
        lon, lat = t.transform(x, y)
        gt, sc, n = (list(r[4:]) + ["housenumber", 0.95, 1][len(r) - 4:])[:3]
        out.append({"bv": bv, "commune": com, "lon": repr(lon), "lat": repr(lat), "geo_type": gt,
                    "geo_score": str(sc), "count": str(n)})
    return pd.DataFrame(out)


def assert_tiles(out: dict, polygon, exact=False) -> None:
    """The geometries of *out* tile *polygon*: valid, no gap, no overlap; *exact*: shared edges noded alike
    (split_blocks cleans what a cut leaves)."""
    geoms = np.array(list(out.values()), dtype=object)
    assert shapely.is_valid(geoms).all()
    assert abs(shapely.area(geoms).sum() - polygon.area) < 1e-6
    assert abs(shapely.union_all(geoms).area - polygon.area) < 1e-6
    if exact:
        assert shapely.coverage_is_valid(geoms)
