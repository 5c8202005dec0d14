"""Several départements in one run: one pass over the national roll, cached per département, one layer."""

import filecmp

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from conftest import data, roll_rows
from decoupage_bv import InputError, build
from decoupage_bv.cli import main
from decoupage_bv.national import ALL_DEPTS, build_departements, parse_depts


def test_parse_depts():
    # 96 metropolitan, 5 overseas départements, and Saint-Pierre-et-Miquelon (975), which has polling stations
    assert len(ALL_DEPTS) == 102 and {"2A", "2B", "971", "975", "976"} <= set(ALL_DEPTS) and "20" not in ALL_DEPTS
    assert parse_depts("all") == list(ALL_DEPTS)
    assert parse_depts("974, 2a,31,29") == ["2A", "29", "31", "974"]  # the national order: 19, 2A, 2B, 21
    with pytest.raises(InputError, match="2A"):
        parse_depts("29,20")


@pytest.fixture(scope="module")
def national(tmp_path_factory):
    """A roll of two real départements (the Finistère REU sample, the Paris 2012 list) and one overseas
    commune of La Réunion, with their outlines in one file each."""
    tmp = tmp_path_factory.mktemp("national")
    a = pd.read_csv(data("reu", "29_reu2022_sample_3communes.csv"), dtype=str)
    b = pd.read_csv(data("paris2012_dev", "roll.csv"), dtype=str).drop(columns=["nb_electeurs", "geo_adresse"])
    x0, y0 = 340000.0, 7660000.0  # EPSG:2975, Saint-Denis (La Réunion)
    c = roll_rows([("97411_1", "97411", x0 + 200, y0 + 200), ("97411_2", "97411", x0 + 800, y0 + 800),
                   ("97411_1", "97411", x0 + 300, y0 + 100)], crs="EPSG:2975").rename(columns={
        "bv": "id_brut_bv_reu", "commune": "code_commune_ref", "lon": "longitude", "lat": "latitude",
        "count": "nb_adresses"})
    pd.concat([a, b, c]).to_csv(tmp / "roll.csv", index=False)
    reunion = gpd.GeoDataFrame({"code": ["97411"], "nom": ["Saint-Denis"]},
                               geometry=[shapely.box(x0, y0, x0 + 1000, y0 + 1000)], crs=2975).to_crs(4326)
    com = pd.concat([gpd.read_file(data("communes", "29_communes_adminexpress2018.geojson")),
                     gpd.read_file(data("paris2012_dev", "communes.geojson")), reunion])
    gpd.GeoDataFrame(com, crs=4326).to_file(tmp / "communes.gpkg")
    return tmp


def test_national_build_is_the_concatenation_of_departement_builds(national, monkeypatch):
    cache = national / "cache"
    r = build_departements(["29", "31", "75"], str(national / "roll.csv"), str(national / "communes.gpkg"),
                           cache_dir=str(cache))
    assert r.report["departements_built"] == ["29", "75"]
    assert r.report["departements_missing"] == [{"departement": "31", "reason": "no address row"}]
    assert r.polygons.crs.to_epsg() == 2154
    com = gpd.read_file(national / "communes.gpkg")
    for d in ("29", "75"):
        alone = build(str(national / "roll.csv"), com, dept=d).polygons
        mine = r.polygons[r.polygons["code_insee"].str[:2] == d].reset_index(drop=True)
        assert list(mine["id_bv"].fillna("")) == list(alone["id_bv"].fillna(""))
        assert all(a.equals_exact(b, 1e-6) for a, b in zip(mine.geometry, alone.geometry))
    assert r.report["counts"]["bv_drawn"] == 31 + 197  # the 2012 list has one BV more than its map
    # every BV in pieces, with its département, as in the report of each
    per = r.report["per_departement"]
    assert r.report["bv_multipart"] == [dict(m, departement=d) for d in ("29", "75") for m in per[d]["bv_multipart"]]
    multi = r.polygons[(r.polygons.geom_type == "MultiPolygon") & r.polygons["code_bv"].notna()]
    assert len(r.report["bv_multipart"]) == len(multi) > 0
    # an interrupted run starts again where it stopped: nothing is rebuilt
    import decoupage_bv.national as nat

    monkeypatch.setattr(nat, "build", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
    again = build_departements(["29", "75"], str(national / "roll.csv"), str(national / "communes.gpkg"),
                               cache_dir=str(cache))
    assert len(again.polygons) == len(r.polygons)


def test_overseas_in_the_set_gives_one_wgs84_layer_and_reproducible_geoparquet(national, tmp_path):
    args = ["build", "--dept", "29,974", "--addresses", str(national / "roll.csv"), "--communes",
            str(national / "communes.gpkg"), "-q"]
    for run in ("a", "b"):
        res = CliRunner().invoke(main, args + ["-o", str(tmp_path / run / "bv.parquet"),
                                               "-o", str(tmp_path / run / "bv.gpkg")])
        assert res.exit_code == 0, res.output
    assert filecmp.cmp(tmp_path / "a" / "bv.parquet", tmp_path / "b" / "bv.parquet", shallow=False)
    g = gpd.read_parquet(tmp_path / "a" / "bv.parquet")
    assert g.crs.to_epsg() == 4326 and {"29039", "97411"} <= set(g["code_insee"])
    rep = (tmp_path / "a" / "bv.report.json").read_text()
    assert '"departements_built": [\n    "29",\n    "974"\n  ]' in rep


def test_several_departements_fetch_the_national_files_once(tmp_path, monkeypatch):
    """Without local files, the national REU table, communes and constituencies are downloaded whole (from a
    local server here), then cut per département. The 31 rows here keep Finistère coordinates: that
    département is reported, not drawn, and does not stop the others."""
    import json as _json

    from test_fetch import Server, serve_datagouv

    server = Server()
    try:
        com = pd.concat([gpd.read_file(data("communes", "29_communes_adminexpress2018.geojson")),
                         gpd.read_file(data("communes", "31_communes_adminexpress2018.geojson"))])
        serve_datagouv(server, gpd.GeoDataFrame(com, crs=4326).to_json().encode())
        monkeypatch.setenv("DECOUPAGE_BV_DATAGOUV_API", server.url + "/api/1")
        monkeypatch.chdir(tmp_path)
        res = CliRunner().invoke(main, ["build", "--dept", "29,31", "-q"])
        assert res.exit_code == 0, res.output
        rep = _json.loads((tmp_path / "data" / "out" / "bv_29_31.report.json").read_text())
        assert rep["departements_built"] == ["29"] and rep["counts"]["bv_drawn"] == 31
        (missing,) = rep["departements_missing"]
        assert missing["departement"] == "31" and "usable" in missing["reason"]
        assert sum(1 for path, _ in server.log if path == "/reu/adresses.csv") == 1
        # OpenStreetMap is unreachable here: each département says so and is built without street lines
        streets = rep["per_departement"]["29"]["streets"]
        assert streets["lines"] == 0 and "unavailable" in streets["note"]
        assert rep["per_departement"]["29"]["method"] == "voronoi"
        # offline afterwards: from the cache; with an empty cache, every missing file in one line
        res = CliRunner().invoke(main, ["build", "--dept", "29,31", "-q", "--offline", "-o", "again.gpkg"])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(main, ["build", "--dept", "all", "--offline", "--cache", "empty"])
        assert res.exit_code == 1 and "--offline: 3 source(s) not in the cache" in res.output
    finally:
        server.close()


def test_streets_per_departement_from_a_function(national, tmp_path):
    """A function gives each département its street lines (as fetch.fetch_streets does from the cache):
    Paris gets the City's axes and is built with them; a failure for Finistère is noted and it is built
    without, with the same result as a build without streets."""
    from decoupage_bv._errors import DownloadError

    asked = []

    def lines(dept, roll):
        asked.append((dept, pd.read_csv(roll, nrows=1, dtype=str)["commune"].iloc[0][:2]))
        if dept == "29":
            raise DownloadError("no network here")
        return data("paris_dev", "streets_voie.geojson")

    r = build_departements(["29", "75"], str(national / "roll.csv"), str(national / "communes.gpkg"),
                           cache_dir=str(tmp_path / "cache"), streets=lines)
    assert asked == [("29", "29"), ("75", "75")]
    per = r.report["per_departement"]
    assert per["75"]["method"] == "streets" and per["75"]["streets"]["lines"] > 1000
    assert per["29"]["method"] == "voronoi" and "no network here" in per["29"]["streets"]["note"]
    plain = build_departements(["29"], str(national / "roll.csv"), str(national / "communes.gpkg"),
                               cache_dir=str(tmp_path / "cache2"))
    mine = r.polygons[r.polygons["code_insee"].str[:2] == "29"].reset_index(drop=True)
    assert all(a.equals_exact(b, 1e-6) for a, b in zip(mine.geometry, plain.polygons.geometry))


def test_a_fault_in_one_departement_is_reported_and_the_others_are_built(national, tmp_path, monkeypatch):
    import decoupage_bv.national as nat

    real = nat.build

    def faulty(roll, com, dept, **kw):
        if dept == "29":
            raise RuntimeError("boom")
        return real(roll, com, dept=dept, **kw)

    monkeypatch.setattr(nat, "build", faulty)
    r = build_departements(["29", "75"], str(national / "roll.csv"), str(national / "communes.gpkg"),
                           cache_dir=str(tmp_path / "cache"))
    assert r.report["departements_built"] == ["75"]
    (missing,) = r.report["departements_missing"]
    assert missing["departement"] == "29" and "internal error" in missing["reason"] and "boom" in missing["reason"]
