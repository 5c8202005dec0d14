"""Geocoding against a real Redis + addok (addok-fr, addok-france, addok-csv) on 127.0.0.1.

addok indexes BAN documents rebuilt from the answers recorded in the 2019 Val-de-Marne list; the raw
``adresse``/``cp``/``ville`` of that list are then geocoded and compared with the recorded BAN answers.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import requests

from conftest import data
from decoupage_bv.geocode import flag, geocode

ADDOK_CONF = """
REDIS = {{"host": "127.0.0.1", "port": {port}, "indexes": {{"db": 0}}, "documents": {{"db": 1}}}}
QUERY_PROCESSORS_PYPATHS = ["addok.helpers.text.check_query_length", "addok_france.extract_address",
                            "addok_france.clean_query", "addok_france.remove_leading_zeros"]
PROCESSORS_PYPATHS = ["addok.helpers.text.tokenize", "addok.helpers.text.normalize", "addok_france.glue_ordinal",
                      "addok_france.fold_ordinal", "addok_france.flag_housenumber", "addok.helpers.text.synonymize",
                      "addok_fr.phonemicize"]
SEARCH_RESULT_PROCESSORS_PYPATHS = ["addok.helpers.results.match_housenumber", "addok_france.make_labels",
                                    "addok.helpers.results.score_by_importance",
                                    "addok.helpers.results.score_by_autocomplete_distance",
                                    "addok.helpers.results.score_by_ngram_distance",
                                    "addok.helpers.results.score_by_geo_distance"]
FILTERS = ["type", "postcode", "citycode"]
BATCH_WORKERS = 1
CSV_EXTRA_FIELDS = ["name", "street", "postcode", "city", "citycode", "context"]
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ban_documents(rows: pd.DataFrame) -> list[dict]:
    """addok documents (BAN export shape) from recorded BAN answers: one per street with its housenumbers."""
    rows = rows[rows["result_id"] != ""]
    docs = {}
    for r in rows.itertuples():
        kind = r.result_type
        if kind == "housenumber":
            # 2019 answers: name = the street, ids per address; newer ones: name = '18 Rue …', street = the street
            name = r.result_street or r.result_name
            if r.result_housenumber and name.startswith(r.result_housenumber + " "):
                name = name[len(r.result_housenumber) + 1:]
            sid = f"{r.result_citycode}_{name.lower()}"
        else:
            sid, name = r.result_id, r.result_name
        d = docs.setdefault(sid, {"_id": sid, "id": sid, "type": "street" if kind == "housenumber" else kind, "name": name,
                                  "postcode": r.result_postcode, "city": r.result_city, "citycode": r.result_citycode,
                                  "context": r.result_context, "importance": 0.5, "_pts": [], "housenumbers": {}})
        lat, lon = float(r.latitude), float(r.longitude)
        if kind == "housenumber":
            d["housenumbers"].setdefault(r.result_housenumber, {"id": r.result_id, "lat": lat, "lon": lon})
        d["_pts"].append((lat, lon))
    out = []
    for d in docs.values():
        pts = np.array(d.pop("_pts"))
        d["lat"], d["lon"] = float(pts[:, 0].mean()), float(pts[:, 1].mean())
        if not d["housenumbers"]:
            del d["housenumbers"]
        out.append(d)
    return sorted(out, key=lambda d: d["id"])


@pytest.fixture(scope="module")
def addok_url(tmp_path_factory):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    pytest.importorskip("addok")
    # everything that can skip or fail comes before Redis starts: nothing is left running behind a skip
    rows = pd.read_csv(data("reu", "94_electoral_lists_2019_geocoded.csv.bz2"), dtype=str, keep_default_na=False)
    tmp = tmp_path_factory.mktemp("addok")
    docs = tmp / "docs.ndjson"
    docs.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in ban_documents(rows)) + "\n")
    rport, aport = _free_port(), _free_port()
    conf = tmp / "addok_conf.py"
    conf.write_text(ADDOK_CONF.format(port=rport))
    env = dict(os.environ, ADDOK_CONFIG_MODULE=str(conf))
    addok = [os.path.join(os.path.dirname(sys.executable), "addok")]
    server = None
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", rport), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        subprocess.run(addok + ["batch", str(docs)], env=env, check=True, capture_output=True, timeout=600)
        subprocess.run(addok + ["ngrams"], env=env, check=True, capture_output=True, timeout=600)
        server = subprocess.Popen(addok + ["serve", "--host", "127.0.0.1", "--port", str(aport)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{aport}"
        for _ in range(100):
            try:
                requests.get(url + "/search/?q=test", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url, rows
    finally:
        if server:
            server.terminate()
            server.wait(10)
        redis.terminate()
        redis.wait(10)


def _metres(lat1, lon1, lat2, lon2):
    r = 6371000.0
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(a))


def test_addok_geocodes_val_de_marne_like_ban(addok_url):
    url, rows = addok_url
    found = rows[rows["latitude"] != ""]
    sample = found.sample(n=1500, random_state=0)
    got = geocode(sample, ["adresse", "cp", "ville"], url=url, chunk_rows=500, min_interval=0)
    d = _metres(sample["latitude"].astype(float).to_numpy(), sample["longitude"].astype(float).to_numpy(),
                pd.to_numeric(got["latitude"], errors="coerce").to_numpy(),
                pd.to_numeric(got["longitude"], errors="coerce").to_numpy())
    within = pd.Series(np.nan_to_num(d, nan=np.inf) <= 50, index=sample["result_type"].to_numpy())
    by_type = within.groupby(level=0).agg(["mean", "size"])
    print("\naddok vs recorded BAN answers, share within 50 m by BAN result type:\n" + by_type.to_string())
    print(f"overall: {within.mean():.3f} of {len(within)}")
    assert within.mean() > 0.85
    assert by_type.loc["housenumber", "mean"] > 0.85
    # the citycode of the answer is kept and checked against the expected commune
    reasons = flag(got, expected_citycode=sample["result_citycode"].reset_index(drop=True))
    assert (reasons == "").mean() > 0.8
    assert set(reasons) <= {"", "not_found", "low_score", "municipality", "other_commune"}


def test_addok_unknown_addresses_are_flagged(addok_url):
    url, _ = addok_url
    df = pd.DataFrame({"adresse": ["zzzz qqqq wwww"], "cp": ["94000"], "ville": ["Nulle-Part"]})
    got = geocode(df, ["adresse", "cp", "ville"], url=url, min_interval=0)
    assert flag(got).iloc[0] in {"not_found", "low_score"}


def test_addok_geocode_cli_then_build(addok_url, tmp_path):
    from click.testing import CliRunner

    from decoupage_bv.cli import main

    url, rows = addok_url
    raw = rows[rows["ville"].str.upper().str.startswith("ABLON")][["bureau", "adresse", "cp", "ville"]]
    src = tmp_path / "ablon.csv"
    raw.to_csv(src, sep=";", index=False, encoding="latin-1")
    out = tmp_path / "ablon_geocoded.csv"
    res = CliRunner().invoke(main, ["geocode", str(src), "--columns", "adresse", "--columns", "cp",
                                    "--columns", "ville", "--url", url, "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(got) == len(raw) and (got["geo_reject"] == "").mean() > 0.9
    res = CliRunner().invoke(main, [
        "build", "--dept", "94", "--addresses", str(out),
        "--communes", data("communes", "94_communes_adminexpress2018.geojson"),
        "--col", "bv=bureau", "--col", "commune_name=ville", "--col", "geo_type=result_type",
        "--col", "geo_score=result_score", "--col", "citycode=result_citycode", "-o", str(tmp_path / "b.gpkg"),
        "-q", "-j", "1"])
    assert res.exit_code == 0, res.output
    import geopandas as gpd

    g = gpd.read_file(tmp_path / "b.gpkg")
    assert sorted(g.loc[g["code_insee"] == "94001", "code_bv"]) == ["0001", "0002", "0003", "0004"]
    # the same in one step: build geocodes the raw list itself
    res = CliRunner().invoke(main, [
        "build", "--dept", "94", "--addresses", str(src), "--geocode", "adresse", "--geocode", "cp",
        "--geocode", "ville", "--geocoder-url", url, "--cache", str(tmp_path / "raw"),
        "--communes", data("communes", "94_communes_adminexpress2018.geojson"),
        "--col", "bv=bureau", "--col", "commune_name=ville", "-o", str(tmp_path / "c.gpkg"), "-q", "-j", "1"])
    assert res.exit_code == 0, res.output
    c = gpd.read_file(tmp_path / "c.gpkg")
    assert sorted(c.loc[c["code_insee"] == "94001", "code_bv"]) == ["0001", "0002", "0003", "0004"]
    assert (tmp_path / "raw" / "geocoded" / "ablon.geocoded.csv").exists()


def test_addok_regeocodes_weak_reu_rows(addok_url, tmp_path):
    """REU-shaped rows whose geocoding fell back to the commune get a house position again."""
    from decoupage_bv.geocode import regeocode_weak

    url, rows = addok_url
    sample = rows[rows["result_type"] == "housenumber"].sample(n=200, random_state=1).reset_index(drop=True)
    reu = pd.DataFrame({"id_brut_bv_reu": sample["result_citycode"] + "_" + sample["bureau"],
                        "code_commune_ref": sample["result_citycode"], "adresse": sample["adresse"],
                        "cp": sample["cp"], "ville": sample["ville"],
                        "longitude": sample["longitude"], "latitude": sample["latitude"],
                        "geo_type": "housenumber", "geo_score": sample["result_score"]})
    weak = np.arange(len(reu)) % 2 == 0
    reu.loc[weak, ["longitude", "latitude", "geo_type", "geo_score"]] = ["2.45", "48.78", "municipality", "0.3"]
    out, improved = regeocode_weak(reu, ["adresse", "cp", "ville"], url=url, citycode="code_commune_ref")
    assert improved >= 0.9 * weak.sum()
    d = _metres(sample["latitude"].astype(float), sample["longitude"].astype(float),
                out["latitude"].astype(float), out["longitude"].astype(float))
    assert (d[weak] <= 50).mean() > 0.9
    assert (out.loc[~weak, "longitude"] == reu.loc[~weak, "longitude"]).all()  # strong rows untouched


def test_fixture_leaves_no_redis_behind_when_the_data_is_missing(tmp_path):
    """Without ../shared the addok tests skip, and no redis-server outlives them."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/run installs it)")

    def redis_pids():
        out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout
        return set(out.split())

    before = redis_pids()
    env = dict(os.environ, DECOUPAGE_BV_DATA=str(tmp_path / "no-data"))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                          "-k", "addok_geocodes_val_de_marne_like_ban"], cwd=os.path.dirname(os.path.dirname(__file__)),
                         env=env, capture_output=True, text=True, timeout=300)
    assert "skipped" in res.stdout, res.stdout
    time.sleep(0.5)
    assert redis_pids() <= before
