"""What a new user meets first: unwritable outputs, half-written sets, file modes, bad coordinates, reports."""

import os
import stat

import pytest
import shapely
from click.testing import CliRunner

from conftest import data, roll_rows
from decoupage_bv.cli import main

X0, Y0 = 650000.0, 6860000.0
REU = "29_reu2022_sample_3communes.csv"
COM = "29_communes_adminexpress2018.geojson"


def _build_args(*out):
    args = ["build", "--dept", "29", "--addresses", data("reu", REU), "--communes", data("communes", COM),
            "-q", "-j", "1", "--no-osm-streets"]
    for o in out:
        args += ["-o", str(o)]
    return args


@pytest.mark.parametrize("bad", ["/proc/decoupage_bv_test/bv.gpkg", "FILE/bv.gpkg", "ok.csv"])
def test_unwritable_or_unknown_output_fails_first_in_one_line(tmp_path, bad):
    (tmp_path / "FILE").write_text("a file, not a folder")
    bad = bad.replace("FILE", str(tmp_path / "FILE"))
    if not bad.startswith("/"):
        bad = str(tmp_path / bad)
    ok = tmp_path / "ok.gpkg"
    res = CliRunner().invoke(main, _build_args(ok, bad))
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and bad in lines[0]
    assert not ok.exists() and not (tmp_path / "ok.report.json").exists()  # no half of a set


def test_join_and_demo_check_their_outputs_first(tmp_path):
    (tmp_path / "FILE").write_text("x")
    res = CliRunner().invoke(main, ["join", "--polygons", data("bv_official", "brest_2024.geojson"), "--results",
                                    data("results", "29_legislatives2024_t1_by_bv_ministry_format.csv"),
                                    "-o", str(tmp_path / "FILE" / "j.gpkg")])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(main, ["demo", "--out-dir", str(tmp_path / "FILE" / "demo"), "-q"])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1


def test_every_output_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        res = CliRunner().invoke(main, _build_args(tmp_path / "bv.gpkg", tmp_path / "bv.geojson"))
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(main, ["join", "--polygons", data("bv_official", "brest_2024.geojson"),
                                        "--results", data("results", "29_legislatives2024_t1_by_bv_ministry_format.csv"),
                                        "-o", str(tmp_path / "j.gpkg"), "-q"])
        assert res.exit_code == 0, res.output
    finally:
        os.umask(old)
    for name in ("bv.gpkg", "bv.geojson", "bv.report.json", "j.gpkg", "j.long.csv", "j.join-report.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary left behind


def _roll_variant(tmp_path, how):
    import pandas as pd
    from pyproj import Transformer

    roll = pd.read_csv(data("reu", REU), dtype=str)
    lon, lat = roll["longitude"].astype(float), roll["latitude"].astype(float)
    if how == "text":
        roll["longitude"], roll["latitude"] = "n/a", "n/a"
    elif how == "nan":
        roll["longitude"], roll["latitude"] = "NaN", "NaN"
    elif how == "abroad":
        roll["longitude"] = (lon + 40).astype(str)
    elif how == "swapped":
        roll["longitude"], roll["latitude"] = lat.astype(str), lon.astype(str)
    elif how == "lambert93":
        x, y = Transformer.from_crs(4326, 2154, always_xy=True).transform(lon.to_numpy(), lat.to_numpy())
        roll["longitude"], roll["latitude"] = x.round(1).astype(str), y.round(1).astype(str)
    path = tmp_path / f"roll_{how}.csv"
    roll.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("how,words", [("text", "usable"), ("nan", "usable"), ("abroad", "usable"),
                                       ("swapped", "swapped"), ("lambert93", "Lambert-93")])
def test_nothing_usable_is_an_error_not_a_silent_success(tmp_path, how, words):
    out = tmp_path / "bv.gpkg"
    res = CliRunner().invoke(main, ["build", "--dept", "29", "--addresses", _roll_variant(tmp_path, how),
                                    "--communes", data("communes", COM), "-o", str(out), "-q", "-j", "1",
                                    "--no-osm-streets"])
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: roll_") and words in lines[0]
    assert not out.exists()


def test_geojson_keeps_shared_edges_shared(tmp_path):
    """Reprojection to WGS84 and 7-decimal rounding must not make neighbouring BVs overlap (Val-de-Marne)."""
    import geopandas as gpd

    from decoupage_bv import build

    cols = {"bv": "bureau", "commune_name": "ville", "lon": "longitude", "lat": "latitude",
            "geo_type": "result_type", "geo_score": "result_score", "citycode": "result_citycode"}
    r = build(data("reu", "94_electoral_lists_2019_geocoded.csv.bz2"),
              data("communes", "94_communes_adminexpress2018.geojson"), dept="94", columns=cols)
    r.write(str(tmp_path / "bv.geojson"))
    g = gpd.read_file(tmp_path / "bv.geojson").to_crs(2154)
    geoms = g.geometry.values
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    overlap = shapely.area(shapely.intersection(geoms[a[keep]], geoms[b[keep]]))
    assert overlap.max() < 0.05
    assert abs(g.area.sum() - r.polygons.area.sum()) / r.polygons.area.sum() < 1e-6


def test_no_progress_bar_remnants_when_stderr_is_not_a_terminal(tmp_path):
    import subprocess
    import sys

    args = _build_args(tmp_path / "bv.gpkg")
    args.remove("-q")
    res = subprocess.run([sys.executable, "-m", "decoupage_bv.cli", *args], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr and "commune/s" not in res.stderr and "it/s" not in res.stderr
    assert "BV drawn of 31" in res.stderr


def test_invalid_outline_is_repaired_without_losing_area_flagged_and_warned(tmp_path):
    import geopandas as gpd

    from decoupage_bv import build
    from decoupage_bv._errors import DecoupageWarning

    # a ring that runs back over itself (a digitising slip): 1,060,000 m² by the shoelace formula, 1 km² really
    bad = shapely.Polygon([(X0, Y0), (X0 + 1000, Y0), (X0 + 1000, Y0 + 1000), (X0, Y0 + 1000), (X0, Y0 + 500),
                           (X0 + 600, Y0 + 500), (X0 + 600, Y0 + 600), (X0, Y0 + 600), (X0, Y0)])
    assert not bad.is_valid
    com = gpd.GeoDataFrame({"code": ["31001"], "nom": ["Alpha"]}, geometry=[bad], crs=2154).to_crs(4326)
    path = tmp_path / "communes.gpkg"
    com.to_file(path)
    rows = [("31001_1", "31001", X0 + 200, Y0 + 200), ("31001_2", "31001", X0 + 800, Y0 + 800),
            ("31001_1", "31001", X0 + 300, Y0 + 300), ("31001_2", "31001", X0 + 700, Y0 + 900)]
    with pytest.warns(DecoupageWarning, match="31001"):
        r = build(roll_rows(rows), str(path), dept="31")
    assert abs(r.polygons.area.sum() - 1e6) < 1.0
    assert r.polygons["quality"].str.contains("outline_repaired").all()
    assert r.report["communes_repaired"][0]["code"] == "31001"
    roll = tmp_path / "roll.csv"
    roll_rows(rows).rename(columns={"bv": "id_brut_bv_reu", "commune": "code_commune_ref", "lon": "longitude",
                                    "lat": "latitude"}).to_csv(roll, index=False)
    res = CliRunner().invoke(main, ["build", "--dept", "31", "--addresses", str(roll), "--communes", str(path),
                                    "-o", str(tmp_path / "bv.gpkg"), "-j", "1", "--no-osm-streets"])
    assert res.exit_code == 0, res.output
    assert "Warning: 1 invalid commune outline(s) repaired (31001: " in res.output
    assert "elf-intersection" in res.output
    assert "UserWarning" not in res.output


def test_help_has_examples_and_build_options_are_grouped():
    for cmd in ("build", "fetch", "geocode", "evaluate", "join", "map", "demo"):
        res = CliRunner().invoke(main, [cmd, "--help"])
        assert res.exit_code == 0 and "Examples:" in res.output and "decoupage-bv " + cmd in res.output, cmd
    out = CliRunner().invoke(main, ["build", "--help"]).output
    for section in ("Inputs:", "Outputs:", "Method:", "Point filters:", "Download and cache:"):
        assert section in out
    assert ".bz2" in out and "electors" in out and "geo_adresse" in out


def test_repository_hygiene():
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(["git", "check-ignore", "-q", "notebooks/brest_legislatives_2024.nbconvert.ipynb"],
                         cwd=root)
    assert res.returncode == 0  # jupyter nbconvert --execute leaves this beside the notebook
    ci = open(os.path.join(root, ".ci", "run")).read()
    assert ci.index("rm -rf .venv") < ci.index("python3 -m venv .venv")


def test_a_street_file_without_geometry_is_one_line(tmp_path):
    (tmp_path / "streets.csv").write_text("name,highway\nRue A,residential\n")
    res = CliRunner().invoke(main, _build_args(tmp_path / "bv.gpkg") + ["--streets", str(tmp_path / "streets.csv")])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        f"Error: {tmp_path / 'streets.csv'}: no geometry; give a line layer (GeoPackage, GeoJSON, Shapefile)"]
