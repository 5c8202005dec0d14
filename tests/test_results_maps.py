"""Results in the Ministry's layouts, joins, maps, and the notebook."""

import json
import os

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import data
from decoupage_bv import InputError
from decoupage_bv.cli import main
from decoupage_bv.results import join, read_results

HERE = os.path.dirname(os.path.abspath(__file__))


def test_ministry_2024_layout():
    r = read_results(data("results", "29_legislatives2024_t1_by_bv_ministry_format.csv"))
    assert r.layout == "ministry_2024" and len(r.wide) == 201
    first = r.wide.set_index("id_bv").loc["29011_0001"]
    assert (first["inscrits"], first["votants"], first["exprimes"]) == (997, 787, 776)
    assert first["voix_ENS"] == 172
    assert first["pct_ENS"] == pytest.approx(100 * 172 / 776)  # from counts, not the rounded 22,16 %
    assert first["participation"] == pytest.approx(100 * 787 / 997)
    long = r.long[r.long["id_bv"] == "29011_0001"]
    assert long["voix"].sum() == 776 and set(long["nom"]) >= {"BRÉHIER", "LARSONNEUR"}


def test_ministry_2017_layout_three_digit_communes_and_circonscription():
    r = read_results(data("results", "31_legislatives2017_t1_participation_by_bv.csv"))
    assert r.layout == "ministry_2017_2022" and len(r.wide) == 1310
    w = r.wide.set_index("id_bv")
    assert w.loc["31001_0001", "inscrits"] == 91 and w.loc["31001_0001", "circonscription"] == "31-08"
    assert w.loc["31555_0001", "circonscription"].startswith("31-0")


def test_overseas_letters_unnamed_blocks_latin1(tmp_path):
    text = ("Code du département;Libellé du département;Code de la circonscription;Code de la commune;"
            "Libellé de la commune;Code du b.vote;Inscrits;Votants;Blancs;Nuls;Exprimés;N°Panneau;Sexe;Nom;"
            "Prénom;Nuance;Voix;% Voix/Ins;% Voix/Exp\n"
            "ZA;Guadeloupe;01;101;Les Abymes;0001;1000;400;5;5;390;1;M;DUPONT;Jean;DVG;300;30,00;76,92;"
            "2;F;MARTIN;Éva;RN;90;9,00;23,08\n"
            "2A;Corse-du-Sud;01;004;Ajaccio;0003;500;300;0;0;300;1;M;A;B;DVD;300;60;100\n")
    p = tmp_path / "res.csv"
    p.write_bytes(text.encode("latin-1"))
    r = read_results(str(p))
    w = r.wide.set_index("id_bv")
    assert list(w.index) == ["2A004_0003", "97101_0001"]
    assert w.loc["97101_0001", "voix_RN"] == 90 and w.loc["97101_0001", "circonscription"] == "971-01"
    assert w.loc["97101_0001", "pct_DVG"] == pytest.approx(100 * 300 / 390)
    assert set(r.long.loc[r.long["id_bv"] == "97101_0001", "prenom"]) == {"Jean", "Éva"}


def test_toulouse_metropole_layout_joins_official_toulouse():
    r = read_results(data("results", "toulouse_presidentielle2022_t1_metropole_format.csv"))
    assert r.layout == "toulouse_metropole"
    t = gpd.read_file(data("bv_official", "toulouse_2024.geojson"))
    t = t[t.geometry.notna()].assign(code_insee="31555")
    t["code_bv"] = t["uniq_bdv"]
    j = join(t, [r], set_circonscription=True)
    s = j.summary[r.source]
    assert s["matched"] >= 250
    assert s["matched"] + s["unmatched_results"] == 265
    assert len([u for u in j.unmatched if u["side"] == "polygons"]) == s["polygons_without_result"]
    assert j.polygons["circonscription"].dropna().str.match(r"31-0\d").all()
    assert j.polygons["pct_MACR"].dropna().between(0, 100).all()


def test_generic_csv_with_mapping(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("bdv,inscr,expr,Liste A,Liste B\n1,100,80,50,30\n2,50,40,10,30\n2,50,40,10,30\n")
    r = read_results(str(p), columns={"code_bv": "bdv", "inscrits": "inscr", "exprimes": "expr"},
                     vote_columns=["Liste A", "Liste B"], commune="31555")
    assert list(r.wide["id_bv"]) == ["31555_0001", "31555_0002"]
    assert r.wide.set_index("id_bv").loc["31555_0002", "pct_LISTE_B"] == pytest.approx(75.0)
    assert r.rejected == [{"source": "g", "row": 4, "id_bv": "31555_0002", "reason": "BV repeated in the file"}]
    with pytest.raises(InputError, match="no commune column"):
        read_results(str(p), columns={"code_bv": "bdv"})


def test_join_cli_brest_and_maps(tmp_path):
    out = tmp_path / "brest.gpkg"
    res = CliRunner().invoke(main, [
        "join", "--polygons", data("bv_official", "brest_2024.geojson"),
        "--results", data("results", "29_legislatives2024_t1_by_bv_ministry_format.csv"),
        "--results", data("results", "29_legislatives2024_t2_by_bv_ministry_format.csv"),
        "--label", "t1", "--label", "t2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    g = gpd.read_file(out)
    assert {"t1_pct_RN", "t2_pct_UG", "t1_participation"} <= set(g.columns)
    rep = json.loads((tmp_path / "brest.join-report.json").read_text())
    assert rep["summary"]["t1"]["matched"] == 110
    reasons = {(u["side"], u["reason"]) for u in rep["unmatched"]}
    assert ("polygons", "commune absent from the results") in reasons
    assert ("results", "commune not in the polygons") in reasons
    long = pd.read_csv(tmp_path / "brest.long.csv", dtype={"code_bv": str})
    assert set(long["source"]) == {"t1", "t2"}
    for ext in ("png", "html"):
        r = CliRunner().invoke(main, ["map", str(out), "-c", "t1_pct_UG", "-o", str(tmp_path / f"m.{ext}")])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "m.html").read_text()
    assert "folium" in html and "t1_pct_UG" in html
    r = CliRunner().invoke(main, ["map", str(out), "-c", "pct_nothing", "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "no column 'pct_nothing'" in r.output


def test_notebook_runs_headless(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    data("results")
    nb = nbformat.read(os.path.join(HERE, "..", "notebooks", "brest_legislatives_2024.ipynb"), as_version=4)
    monkeypatch.setenv("DECOUPAGE_BV_OUT", str(tmp_path))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.path.join(HERE, "..", "notebooks")}}).execute()
    assert (tmp_path / "brest_2024_t1_pct_UG.png").exists()


def test_join_report_ids_use_the_ministry_padding_and_maps_name_their_sources(tmp_path):
    import matplotlib

    from decoupage_bv.maps import commune_outlines, draw
    from decoupage_bv.results import join_files

    joined, _ = join_files(data("bv_official", "brest_2024.geojson"),
                           [data("results", "29_legislatives2024_t1_by_bv_ministry_format.csv")],
                           str(tmp_path / "j.gpkg"))
    ids = [u["id_bv"] for u in joined.unmatched if u["side"] == "polygons"]
    assert ids and all(len(i.split("_")[1]) == 4 for i in ids) and "29189_0011" in ids
    g = gpd.read_file(tmp_path / "j.gpkg")
    # the official polygons leave slits between them: the outline of Brest is one ring, no stray strokes
    out = commune_outlines(g.to_crs(2154), g["codeBureauVote"].str[:5])
    assert out.geom_type.loc["29019"] == "Polygon" and len(out.loc["29019"].interiors) == 0
    draw(g, "pct_UG", str(tmp_path / "m.html"), label=str(tmp_path / "j.gpkg"))
    html = (tmp_path / "m.html").read_text()
    assert "tile.openstreetmap.org" in html and "OpenStreetMap" in html and "contributors" in html
    matplotlib.rcParams["svg.fonttype"] = "none"
    try:
        draw(g, "pct_UG", str(tmp_path / "m.svg"), label=str(tmp_path / "j.gpkg"))
    finally:
        matplotlib.rcParams["svg.fonttype"] = "path"
    assert "Polygons: j.gpkg" in (tmp_path / "m.svg").read_text()
