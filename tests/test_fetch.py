"""Downloads against a local HTTP server on 127.0.0.1 serving fixtures built from ../shared/data, with faults."""

import gzip
import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from conftest import data
from decoupage_bv import fetch
from decoupage_bv._errors import DownloadError, MissingSourceError
from decoupage_bv._http import download, stream_filtered


class Server:
    """Serves ``files`` (path → bytes) with Range support; ``faults`` (path → list of modes) are used up in order:
    ``drop`` closes the connection half-way, ``500`` answers an error, ``norange`` ignores Range."""

    def __init__(self):
        self.files, self.faults, self.log = {}, {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                outer.log.append((path, self.headers.get("Range")))
                body = outer.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if callable(body):
                    body = body()
                fault = outer.faults.get(path, [])
                mode = fault.pop(0) if fault else None
                if mode == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and mode != "norange":
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if mode == "drop":
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                query = self.rfile.read(length).decode("utf-8", "replace")
                outer.log.append((self.path, "POST"))
                answer = outer.post.get(self.path.split("?")[0])
                if answer is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    body = answer(query)
                except RuntimeError:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.post = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.close()


def _national_roll() -> bytes:
    """The real Finistère sample plus the same rows moved to Haute-Garonne, as one 'national' file."""
    df = pd.read_csv(data("reu", "29_reu2022_sample_3communes.csv"), dtype=str)
    other = df.assign(code_commune_ref=df["code_commune_ref"].str.replace("^29", "31", regex=True),
                      id_brut_bv_reu=df["id_brut_bv_reu"].str.replace("^29", "31", regex=True))
    return pd.concat([df, other]).to_csv(index=False).encode()


def _api(server, resources):
    for slug, res in resources.items():
        server.files[f"/api/1/datasets/{slug}/"] = json.dumps({"resources": res}).encode()


def serve_datagouv(server, communes: bytes):
    """The data.gouv.fr API and files of a build with nothing but its code: the 'national' REU (Finistère
    rows, and the same moved to 31), a BV table, *communes*, the Finistère constituencies."""
    server.files["/reu/adresses.csv"] = _national_roll()
    server.files["/reu/bv.csv"] = b"id_brut_bv_reu,code_commune,id_brut_miom\n29039_1,29039,29039_0001\n"
    server.files["/osm/communes.geojson"] = communes
    with open(data("circonscriptions", "29_circonscriptions_2024.geojson"), "rb") as fh:
        server.files["/circ/circonscriptions.geojson"] = fh.read()
    _api(server, {
        "bureaux-de-vote-et-adresses-de-leurs-electeurs": [
            {"title": "table-adresses-reu", "url": server.url + "/reu/adresses.csv"},
            {"title": "table-bv-reu", "url": server.url + "/reu/bv.csv"}],
        "decoupage-administratif-communal-francais-issu-d-openstreetmap": [
            {"title": "communes (GeoJSON)", "url": server.url + "/osm/communes.geojson"}],
        "contours-geographiques-des-circonscriptions-legislatives": [
            {"title": "circonscriptions-legislatives", "url": server.url + "/circ/circonscriptions.geojson"}]})


def _no_partial_left(root):
    for dirpath, _, files in os.walk(root):
        if ".partial" in dirpath:
            continue
        for f in files:
            assert not f.endswith((".part", ".tmp")), f


def test_download_resumes_after_drop_and_retries_500(server, tmp_path):
    body = _national_roll()
    server.files["/f.csv"] = body
    server.faults["/f.csv"] = ["500", "drop", "drop"]
    dest = tmp_path / "raw" / "f.csv"
    dest.parent.mkdir()
    download(server.url + "/f.csv", str(dest), sha256=hashlib.sha256(body).hexdigest(), backoff=0.01,
             progress=False)
    assert dest.read_bytes() == body
    ranges = [r for p, r in server.log if p == "/f.csv"]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")  # resumed, not restarted
    assert not os.listdir(tmp_path / "raw" / ".partial")


def test_download_server_ignoring_range_restarts_cleanly(server, tmp_path):
    body = os.urandom(300_000)
    server.files["/b.bin"] = body
    server.faults["/b.bin"] = ["drop", "norange"]
    dest = tmp_path / "b.bin"
    download(server.url + "/b.bin", str(dest), backoff=0.01, progress=False)
    assert dest.read_bytes() == body


def test_wrong_checksum_and_truncated_gzip_leave_nothing(server, tmp_path):
    body = _national_roll()
    server.files["/f.csv"] = body
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(server.url + "/f.csv", str(tmp_path / "f.csv"), sha256="0" * 64, progress=False)
    gz = gzip.compress(body)
    server.files["/t.csv.gz"] = gz[: len(gz) // 2]
    with pytest.raises(DownloadError, match="truncated gzip"):
        download(server.url + "/t.csv.gz", str(tmp_path / "t.csv.gz"), progress=False)
    assert sorted(os.listdir(tmp_path)) == [".partial"] and not os.listdir(tmp_path / ".partial")
    with pytest.raises(DownloadError, match="truncated gzip"):
        stream_filtered(server.url + "/t.csv.gz", str(tmp_path / "cut.csv"), fetch._commune_filter("29"),
                        backoff=0.01, progress=False)
    assert sorted(os.listdir(tmp_path)) == [".partial"] and not os.listdir(tmp_path / ".partial")


def test_give_up_after_retries_then_resume_next_run(server, tmp_path):
    body = _national_roll()
    server.files["/f.csv"] = body
    server.faults["/f.csv"] = ["drop"] + ["500"] * 3
    dest = tmp_path / "cut.csv"
    with pytest.raises(DownloadError, match="run again to resume"):
        stream_filtered(server.url + "/f.csv", str(dest), fetch._commune_filter("29"), retries=3, backoff=0.01,
                        progress=False)
    assert not dest.exists()
    info = stream_filtered(server.url + "/f.csv", str(dest), fetch._commune_filter("29"), backoff=0.01,
                           progress=False)
    assert info["kept"] == 12335
    got = pd.read_csv(dest, dtype=str)
    assert len(got) == 12335 and got["code_commune_ref"].str.startswith("29").all()
    assert server.log[-1][1] is not None  # the second run resumed with a Range request


def test_fetch_reu_through_api_cut_to_dept_gzip(server, tmp_path):
    body = _national_roll()
    server.files["/reu/table-adresses-reu.csv.gz"] = gzip.compress(body)
    server.faults["/reu/table-adresses-reu.csv.gz"] = ["drop"]
    bv = b"id_brut_bv_reu,code_commune,code,libelle_reu,id_brut_miom\n29039_1,29039,1,Mairie,29039_0001\n" \
         b"31039_1,31039,1,Mairie,31039_0001\n"
    server.files["/reu/table-bv-reu.csv"] = bv
    _api(server, {"bureaux-de-vote-et-adresses-de-leurs-electeurs": [
        {"title": "table-adresses-reu.csv.gz", "url": server.url + "/reu/table-adresses-reu.csv.gz",
         "last_modified": "2024-05-01"},
        {"title": "table-bv-reu.csv", "url": server.url + "/reu/table-bv-reu.csv",
         "checksum": {"type": "sha256", "value": hashlib.sha256(bv).hexdigest()}}]})
    os.environ["DECOUPAGE_BV_DATAGOUV_API"] = server.url + "/api/1"
    try:
        cache = fetch.Cache(str(tmp_path / "raw"))
        out = fetch.fetch_reu("29", cache, progress=False)
    finally:
        del os.environ["DECOUPAGE_BV_DATAGOUV_API"]
    roll = pd.read_csv(out["table-adresses-reu"], dtype=str)
    assert len(roll) == 12335 and set(roll["code_commune_ref"]) == {"29039", "29046", "29116"}
    assert pd.read_csv(out["table-bv-reu"], dtype=str)["id_brut_miom"].tolist() == ["29039_0001"]
    m = cache.manifest()
    assert m["reu/table-adresses-reu_29.csv"]["url"].endswith("table-adresses-reu.csv.gz")
    assert m["reu/table-adresses-reu_29.csv"]["source_sha256"] == hashlib.sha256(
        server.files["/reu/table-adresses-reu.csv.gz"]).hexdigest()
    _no_partial_left(tmp_path)
    # cached: a second call makes no request
    n = len(server.log)
    fetch.fetch_reu("29", cache, offline=True, progress=False)
    assert len(server.log) == n


def test_offline_says_what_to_put_where(tmp_path):
    cache = fetch.Cache(str(tmp_path / "raw"))
    with pytest.raises(MissingSourceError) as err:
        fetch.fetch_reu("31", cache, offline=True, progress=False)
    assert "reu/table-adresses-reu_31.csv" in str(err.value)
    assert "table-adresses-reu.csv" in err.value.hint and "datasets/bureaux-de-vote" in err.value.hint
    # a national file put there by hand is cut locally, offline
    (tmp_path / "raw" / "reu").mkdir(parents=True)
    (tmp_path / "raw" / "reu" / "table-adresses-reu.csv").write_bytes(_national_roll())
    (tmp_path / "raw" / "reu" / "table-bv-reu.csv").write_bytes(b"id_brut_bv_reu,code_commune\n31039_1,31039\n")
    out = fetch.fetch_reu("31", cache, offline=True, progress=False)
    assert set(pd.read_csv(out["table-adresses-reu"], dtype=str)["code_commune_ref"].str[:2]) == {"31"}


def test_build_dept_with_nothing_but_the_dept(server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from decoupage_bv.cli import main

    with open(data("communes", "29_communes_adminexpress2018.geojson"), "rb") as fh:
        serve_datagouv(server, fh.read())
    monkeypatch.setenv("DECOUPAGE_BV_DATAGOUV_API", server.url + "/api/1")
    monkeypatch.setenv("DECOUPAGE_BV_OVERPASS_URL", server.url + "/no-overpass")  # OSM fails: data.gouv fallback
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["build", "--dept", "29", "-q", "-j", "1"])
    assert res.exit_code == 0, res.output
    import geopandas as gpd

    g = gpd.read_file(tmp_path / "data" / "out" / "bv_29.gpkg")
    assert g["code_bv"].notna().sum() == 31 and set(g["circonscription"].dropna()) >= {"29-08", "29-07", "29-04"}
    manifest = json.loads((tmp_path / "data" / "raw" / "manifest.json").read_text())
    assert set(manifest) == {"reu/table-adresses-reu_29.csv", "reu/table-bv-reu_29.csv",
                             "communes/communes.geojson", "circonscriptions/circonscriptions.geojson"}
    # offline from now on: works from the cache; an empty cache says what to put where
    res = CliRunner().invoke(main, ["build", "--dept", "29", "-q", "-j", "1", "--offline"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["fetch", "--dept", "31", "--offline", "--cache", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "Hint: download" in res.output and "table-adresses-reu.csv" in res.output


def _overpass_elements(communes, lines):
    """An Overpass JSON answer: boundary relations for *communes* (code, name, polygon) and ways for *lines*."""
    import shapely

    elements, nid, wid = [], [1], [1]

    def way(coords, tags=None):
        ids = []
        for x, y in coords:
            elements.append({"type": "node", "id": nid[0], "lon": float(x), "lat": float(y)})
            ids.append(nid[0])
            nid[0] += 1
        w = {"type": "way", "id": wid[0], "nodes": ids}
        if tags:
            w["tags"] = tags
        elements.append(w)
        wid[0] += 1
        return w["id"]

    for k, (code, name, poly) in enumerate(communes):
        members = [{"type": "way", "ref": way(p.exterior.coords), "role": "outer"} for p in shapely.get_parts(poly)]
        elements.append({"type": "relation", "id": 1000 + k, "members": members,
                         "tags": {"type": "boundary", "boundary": "administrative", "admin_level": "8",
                                  "ref:INSEE": code, "name": name}})
    for line in lines:
        way(line.coords, {"highway": "residential", "name": "Rue"})
    return {"version": 0.6, "elements": elements}


def test_osm_communes_and_streets_through_osmnx(server, tmp_path, monkeypatch):
    import geopandas as gpd

    com = gpd.read_file(data("communes", "29_communes_adminexpress2018.geojson"))
    com = com[com["code"].isin(["29039", "29046", "29116"])]
    import numpy as np
    import shapely

    grid = []  # a street grid over each of the three communes
    for x0, y0, x1, y1 in com.geometry.bounds.to_numpy():
        grid += [shapely.LineString([(x, y0), (x, y1)]) for x in np.linspace(x0, x1, 12)[1:-1]]
        grid += [shapely.LineString([(x0, y), (x1, y)]) for y in np.linspace(y0, y1, 12)[1:-1]]
    streets = gpd.GeoDataFrame(geometry=grid, crs=4326)
    boundaries = json.dumps(_overpass_elements(list(zip(com["code"], com["nom"], com.geometry)), [])).encode()
    ways = json.dumps(_overpass_elements([], list(streets.geometry))).encode()
    server.post["/overpass/interpreter"] = lambda q: boundaries if "admin_level" in q else ways
    monkeypatch.setenv("DECOUPAGE_BV_OVERPASS_URL", server.url + "/overpass")
    cache = fetch.Cache(str(tmp_path / "raw"))
    (tmp_path / "raw" / "reu").mkdir(parents=True)
    (tmp_path / "raw" / "reu" / "table-adresses-reu.csv").write_bytes(_national_roll())
    (tmp_path / "raw" / "reu" / "table-bv-reu.csv").write_bytes(b"id_brut_bv_reu,code_commune\n")
    roll = fetch.fetch_reu("29", cache, progress=False)["table-adresses-reu"]
    path = fetch.fetch_communes("29", roll, cache, progress=False)
    got = gpd.read_file(path)
    assert path.endswith("communes_osm_29.gpkg") and sorted(got["code"]) == ["29039", "29046", "29116"]
    assert abs(got.to_crs(2154).area.sum() - com.to_crs(2154).area.sum()) < 1.0
    lines = gpd.read_file(fetch.fetch_streets("29", roll, cache))
    assert len(lines) == 60 and set(lines.geom_type) == {"LineString"}
    assert "streets/streets_osm_29.gpkg" in cache.manifest()
    from decoupage_bv import build

    r = build(roll, path, dept="29", streets=fetch.fetch_streets("29", roll, cache, offline=True))
    assert r.report["method"] == "streets" and r.polygons["code_bv"].notna().sum() == 31


def test_geocoder_client_retries_and_chunks(server):
    """The BAN /search/csv/ protocol: chunked posts, a 500 then success, rows kept in order."""
    import io

    from decoupage_bv.geocode import flag, geocode

    calls = []

    def answer(body):
        calls.append(body)
        if len(calls) == 1:
            return None  # first call: server error
        part = next(p for p in body.split("\r\n--") if 'name="data"' in p)
        df = pd.read_csv(io.StringIO(part.split("\r\n\r\n", 1)[1]), dtype=str)
        df["latitude"], df["longitude"] = "48.8", "2.3"
        df["result_score"], df["result_type"], df["result_citycode"] = "0.9", "housenumber", "75101"
        return df.to_csv(index=False).encode()

    def post(query):
        out = answer(query)
        if out is None:
            raise RuntimeError("boom")
        return out

    server.post["/search/csv/"] = post
    df = pd.DataFrame({"adresse": [f"{i} rue de Rivoli" for i in range(5)], "ville": "Paris"})
    got = geocode(df, ["adresse", "ville"], url=server.url, chunk_rows=2, min_interval=0, backoff=0.01)
    assert len(got) == 5 and list(got["adresse"]) == list(df["adresse"])
    assert len(calls) == 4  # 1 failure + 3 chunks
    assert (flag(got, expected_citycode=pd.Series(["75101"] * 4 + ["75102"])) == ["", "", "", "", "other_commune"]).all()


def test_build_fetches_osm_streets_by_default_and_says_when_it_cannot(server, tmp_path, monkeypatch):
    import geopandas as gpd
    import numpy as np
    import shapely
    from click.testing import CliRunner

    from decoupage_bv.cli import main

    com_path = data("communes", "29_communes_adminexpress2018.geojson")
    com = gpd.read_file(com_path)
    com = com[com["code"].isin(["29039", "29046", "29116"])]
    grid = []
    for x0, y0, x1, y1 in com.geometry.bounds.to_numpy():
        grid += [shapely.LineString([(x, y0), (x, y1)]) for x in np.linspace(x0, x1, 8)[1:-1]]
    ways = json.dumps(_overpass_elements([], grid)).encode()
    server.post["/overpass/interpreter"] = lambda q: ways
    monkeypatch.setenv("DECOUPAGE_BV_OVERPASS_URL", server.url + "/overpass")
    roll = data("reu", "29_reu2022_sample_3communes.csv")
    cache = str(tmp_path / "raw")
    out = tmp_path / "bv.gpkg"
    res = CliRunner().invoke(main, ["build", "--dept", "29", "--addresses", roll, "--communes", com_path,
                                    "--cache", cache, "-o", str(out), "-q", "-j", "1"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "bv.report.json").read_text())
    assert rep["method"] == "streets" and rep["streets"]["source"].startswith("OpenStreetMap")
    assert rep["streets"]["lines"] > 0 and rep["streets"]["note"] is None
    # nothing else was fetched: the roll and the outlines were given
    assert set(json.loads((tmp_path / "raw" / "manifest.json").read_text())) == {"streets/streets_osm_29.gpkg"}
    # offline with an empty cache: built all the same, without streets, and the report says why
    res = CliRunner().invoke(main, ["build", "--dept", "29", "--addresses", roll, "--communes", com_path,
                                    "--cache", str(tmp_path / "empty"), "--offline", "-o", str(out), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "Warning: no OpenStreetMap streets in the cache" in res.output and "method voronoi" in res.output
    rep = json.loads((tmp_path / "bv.report.json").read_text())
    assert rep["method"] == "voronoi" and rep["streets"]["source"] is None and "offline" in rep["streets"]["note"]


def test_offline_names_every_missing_source_at_once(tmp_path):
    from click.testing import CliRunner

    from decoupage_bv.cli import main

    res = CliRunner().invoke(main, ["build", "--dept", "29", "--offline", "--cache", str(tmp_path / "c")])
    assert res.exit_code == 1
    first = res.output.strip().splitlines()[0]
    assert first.startswith("Error: --offline: 4 source(s) not in the cache")
    for name in ("table-adresses-reu_29.csv", "table-bv-reu_29.csv", "communes", "circonscriptions"):
        assert name in first


def test_osm_block_limits_keep_the_streets_that_bound_blocks():
    import geopandas as gpd
    import shapely

    from decoupage_bv.osm import block_limits

    line = shapely.LineString([(0, 0), (1, 1)])
    f = gpd.GeoDataFrame({"highway": ["residential", "service", "footway", None, None, "primary", "tertiary"],
                          "railway": [None, None, None, "subway", "rail", None, None],
                          "tunnel": [None, None, None, None, None, "yes", None],
                          "layer": [None, None, None, None, None, None, "-1"]},
                         geometry=[line] * 6 + [shapely.Point(0, 0)], crs=4326)
    kept = block_limits(f)
    assert list(kept["highway"].fillna(kept["railway"])) == ["residential", "rail"]


def test_no_dns_gives_up_at_once_with_one_line_and_the_offline_hint(monkeypatch):
    import requests

    from decoupage_bv._http import get_json

    calls = []

    def fail(self, method, url, **kw):
        calls.append(url)
        raise requests.ConnectionError(
            "HTTPSConnectionPool(host='www.data.gouv.fr', port=443): Max retries exceeded with url: /api/1/x "
            "(Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection object>: Failed to resolve "
            "'www.data.gouv.fr' ([Errno -3] Temporary failure in name resolution)\"))")

    monkeypatch.setattr(requests.Session, "request", fail)
    with pytest.raises(DownloadError) as info:
        get_json("https://www.data.gouv.fr/api/1/x", backoff=0)
    msg = str(info.value)
    assert len(calls) == 1 and "\n" not in msg
    assert msg.startswith("https://www.data.gouv.fr/api/1/x: the host name does not resolve") and "--offline" in msg
