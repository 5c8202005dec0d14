"""Command line: thin click commands over the library; they parse, call, and print."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import warnings
from dataclasses import replace

import click

from . import __version__
from ._errors import DecoupageError, DecoupageWarning
from .settings import POSITIVE, SHARES, Params


def _errors_to_click(fn):
    """Turn library errors into one-line click errors (with a hint when there is one)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DecoupageError as exc:
            msg = str(exc) + (f"\nHint: {exc.hint}" if exc.hint else "")
            raise click.ClickException(msg) from None

    return wrapper


def _parse_cols(values) -> dict:
    out = {}
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"{v!r}: expected ROLE=COLUMN, e.g. bv=bureau", param_hint="--col")
        role, col = v.split("=", 1)
        out[role.strip()] = col.strip()
    return out


def quiet_option(fn):
    return click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary on stderr.")(fn)


def cache_options(fn):
    fn = click.option("--offline", is_flag=True, help="Use the cache only; say what to download where.")(fn)
    return click.option("--cache", default=os.path.join("data", "raw"), show_default=True,
                        type=click.Path(file_okay=False), help="Download cache folder.")(fn)


#: Params fields set as they are by an option of the same name (``--min-score`` → ``min_score``), with its help.
PARAM_OPTIONS = {
    "min_score": "Drop points with a geocoding score below this.",
    "outside_tolerance": "Metres a point may lie outside its commune.",
    "fragment_max_points": "A detached piece of a BV with at most this many points (locations, whatever the "
                           "addresses at each) that could not be joined to it goes to a neighbour (where "
                           "street-side guides apply; elsewhere pieces of at most 2 points move).",
    "join_max_gap": "A detached piece of a BV at most this many metres from the rest of it is joined to it through "
                    "the gap, or along the limits between BVs, when no other BV's address lies there (0: never).",
    "leftover_max_share": "A detached piece that could not be joined goes to a neighbour when it holds at most this "
                          "share of its BV's addresses (1: every BV in one piece, at the price of the addresses "
                          "given away; 0: fragments only; where guides apply).",
    "join_cut_off_share": "A join's strip may cut off pieces of the BVs it crosses holding, all together, at most "
                          "this share of the joined piece's addresses; they go to a neighbour (0: never; with "
                          "--leftover-max-share 1, 0.5 gives fewer addresses away; where guides apply).",
    "straight_cut_depth": "Method streets: in a block shared by BVs that straight lines separate, the limits are "
                          "those lines deeper inside the block than this many metres from the street axes (0: "
                          "Voronoi throughout).",
    "straight_cut_depth_three": "Method streets: the same depth in a block of three BVs or more, whose core goes to "
                                "the two BVs holding most of its outline when no other BV has an address in it.",
    "empty_region_voronoi_area": "Blocks without addresses touching one another over at least this many m² (a wood "
                                 "cut by its roads) are split as plain Voronoi splits them (inf: never; 0: every "
                                 "block without addresses).",
}


#: Earlier names of those options, still taken.
OLD_NAMES = {"fragment_max_points": ("--fragment-max-addresses",)}


def _param_type(name: str):
    """The click type of a :class:`Params` option, by the ranges :class:`Params` checks: a count or a distance
    at least 0 (a step above 0), a share from 0 to 1."""
    if isinstance(getattr(Params, name), int):
        return click.IntRange(min=0, min_open=name in POSITIVE)
    return click.FloatRange(0, 1) if name in SHARES else click.FloatRange(min=0, min_open=name in POSITIVE)


def tessellation_options(fn):
    """Options of the point filters, the method and fragment cleaning, shared by build and demo; the command
    receives them as one ``params`` (:class:`Params`)."""
    d = Params()
    opts = [
        click.option("--geo-types", default=",".join(d.geo_types), show_default=True,
                     help="geo_type values kept as seeds (comma-separated)."),
        *(click.option("--" + name.replace("_", "-"), *OLD_NAMES.get(name, ()), name, type=_param_type(name),
                       default=getattr(d, name), show_default=True, help=text) for name, text in PARAM_OPTIONS.items()),
        click.option("--split-empty-blocks", "split_empty_blocks", is_flag=True,
                     help="Split every block without addresses among the BVs along its outline, never giving "
                          "it whole to the BV whose outline it rounds off."),
        click.option("--method", type=click.Choice(["auto", "voronoi", "streets"]), default=d.method,
                     show_default=True, help="auto: streets when street lines are given or fetched, else voronoi."),
        click.option("--no-guides", "no_guides", is_flag=True,
                     help="Do not use street-side guides from the address labels (geo_adresse)."),
        click.option("--no-address-axes", "no_address_axes", is_flag=True,
                     help="Where no street lines are given, do not draw street axes from the address labels "
                          "(the odd and even sides of each street)."),
        click.option("--no-rejoin", "no_rejoin", is_flag=True,
                     help="Do not join a detached piece by a strip that cuts another BV, even where every piece "
                          "it cuts off can be joined back to that BV (faster; more BVs in pieces)."),
        click.option("--jobs", "-j", type=click.IntRange(min=0), default=d.jobs, show_default=True,
                     help="Worker processes (0: one per CPU)."),
    ]

    @functools.wraps(fn)
    def with_params(*args, geo_types, split_empty_blocks, method, no_guides, no_address_axes, no_rejoin, jobs,
                    **kwargs):
        given = {name: kwargs.pop(name) for name in PARAM_OPTIONS}
        params = Params(geo_types=tuple(t.strip() for t in geo_types.split(",") if t.strip()), method=method,
                        guides=not no_guides, address_axes=not no_address_axes,
                        join_rejoin_strips=0 if no_rejoin else d.join_rejoin_strips, jobs=jobs, **given)
        if split_empty_blocks:
            params = replace(params, empty_block_hull_margin=0.0, empty_block_hull_margin_small=0.0)
        return fn(*args, params=params, **kwargs)

    for opt in reversed(opts):
        with_params = opt(with_params)
    return with_params


class SectionedCommand(click.Command):
    """A command whose --help lists its options by section (``sections``: option name → section title)."""

    sections: dict = {}
    order: tuple = ()

    def format_options(self, ctx, formatter):
        groups: dict = {}
        for param in self.get_params(ctx):
            rec = param.get_help_record(ctx)
            if rec:
                groups.setdefault(self.sections.get(param.name, "Other options"), []).append(rec)
        for title in [*self.order, *sorted(set(groups) - set(self.order))]:
            if title in groups:
                with formatter.section(title):
                    formatter.write_dl(groups[title])


class BuildCommand(SectionedCommand):
    order = ("Inputs", "Outputs", "Method", "Point filters", "Download and cache", "Other options")
    sections = {
        **dict.fromkeys(["dept", "addresses", "communes", "circonscriptions", "bv_table", "cols",
                         "commune_code_column", "commune_name_column", "geocode_columns", "geocoder_url"], "Inputs"),
        "outputs": "Outputs",
        **dict.fromkeys(["method", "streets", "osm_streets", "no_guides", "no_address_axes", "fragment_max_points",
                         "join_max_gap", "join_cut_off_share", "no_rejoin",
                         "leftover_max_share", "straight_cut_depth", "straight_cut_depth_three",
                         "empty_region_voronoi_area",
                         "split_empty_blocks", "jobs"], "Method"),
        **dict.fromkeys(["geo_types", "min_score", "outside_tolerance"], "Point filters"),
        **dict.fromkeys(["cache", "offline"], "Download and cache"),
    }


ROLES_HELP = ("Roll column for a role, when its name is not recognised: bv (BV id: id_brut_bv_reu, bureau), "
              "commune (INSEE code), commune_name (when there is no code), lon, lat (WGS84 degrees), geo_type and "
              "geo_score (BAN result_type/result_score), count (addresses per row: nb_adresses), citycode (the "
              "geocoder's INSEE code, to drop answers in another commune), address (label read by the street-side "
              "guides: geo_adresse, result_label), electors (nb_electeurs, for evaluation). Repeatable.")


@click.group()
@click.version_option(__version__, prog_name="decoupage-bv")
def main():
    """Polygons of French polling stations (bureaux de vote) from the electoral roll."""
    # what the library warns about is in the report, and summed up in one line by each command
    warnings.filterwarnings("ignore", category=DecoupageWarning)


@main.command(cls=BuildCommand)
@click.option("--dept", required=True,
              help="Département: 01…95, 2A, 2B, 971…976; a list (29,31,2A,974) or 'all' builds them one by one "
                   "from a national roll into one layer (cached per département under data/out/.cache).")
@click.option("--addresses", type=click.Path(dir_okay=False),
              help="REU table-adresses-reu (CSV, optionally .gz/.bz2/.xz, or Parquet), national or cut to the "
                   "département, or a geocoded municipal list. "
                   "Default: fetched from data.gouv.fr into the cache.")
@click.option("--communes", type=click.Path(dir_okay=False),
              help="Commune outlines (GeoJSON, GeoPackage, Shapefile). Default: fetched (OSM-derived, data.gouv.fr).")
@click.option("--circonscriptions", type=click.Path(dir_okay=False),
              help="Constituency polygons (codeCirconscription) or a commune → constituency CSV.")
@click.option("--bv-table", type=click.Path(dir_okay=False), help="INSEE table-bv-reu, for Ministry BV codes.")
@click.option("--output", "-o", "outputs", multiple=True, type=click.Path(dir_okay=False),
              help="Output file (.gpkg, .geojson, .shp, .parquet); repeatable. Default data/out/bv_<dept>.gpkg.")
@click.option("--col", "cols", multiple=True, metavar="ROLE=COLUMN",
              help=ROLES_HELP)
@click.option("--commune-code-column", help="INSEE code column of the outlines (detected by default).")
@click.option("--commune-name-column", help="Name column of the outlines (detected by default).")
@click.option("--streets", type=click.Path(exists=True, dir_okay=False),
              help="Street (and barrier) lines: BV limits then follow them (method streets).")
@click.option("--osm-streets/--no-osm-streets", default=True, show_default=True,
              help="Without --streets, fetch street, rail and river lines from OpenStreetMap (cached); when that "
                   "fails, or offline with none cached, the build goes on without them and says so.")
@click.option("--geocode", "geocode_columns", multiple=True, metavar="COLUMN",
              help="--addresses is a raw list: geocode it first on these columns (e.g. adresse, cp, ville).")
@click.option("--geocoder-url", default="https://api-adresse.data.gouv.fr", show_default=True,
              help="BAN API or a self-hosted addok, for --geocode.")
@cache_options
@tessellation_options
@quiet_option
@_errors_to_click
def build(dept, addresses, communes, circonscriptions, bv_table, outputs, cols, commune_code_column,
          commune_name_column, streets, osm_streets, geocode_columns, geocoder_url, cache, offline, params, quiet):
    """Build BV polygons for a département; inputs not given are fetched from data.gouv.fr and OpenStreetMap
    and cached under data/raw/.

    \b
    Examples:
      decoupage-bv build --dept 31
      decoupage-bv build --dept 29 --addresses table-adresses-reu.csv --communes communes.geojson \\
          --circonscriptions circonscriptions.geojson -o data/out/bv_29.gpkg -o data/out/bv_29.geojson
      decoupage-bv build --dept 94 --addresses liste.csv.bz2 --col bv=bureau --col commune_name=ville \\
          --col geo_type=result_type --col geo_score=result_score --col citycode=result_citycode --offline
    """
    from .fetch import Cache, complete_inputs
    from .national import parse_depts
    from .outputs import check_build_outputs
    from .pipeline import build as run_build

    depts = parse_depts(dept)
    if len(depts) > 1:
        _build_many(depts, dept, addresses, communes, circonscriptions, outputs, cols, params, quiet, cache, offline,
                    streets, osm_streets)
        return
    dept = depts[0]
    if geocode_columns and not addresses:
        raise click.BadParameter("--geocode needs --addresses (a raw address list)", param_hint="--geocode")
    outputs = outputs or (os.path.join("data", "out", f"bv_{dept}.gpkg"),)
    check_build_outputs(outputs)  # before any download or computation
    cols = _parse_cols(cols)
    t0 = time.perf_counter()
    if geocode_columns:  # first, so that what follows (the OSM query's extent) sees coordinates
        from .geocode import GEOCODED_ROLES, geocode_file

        stem = os.path.splitext(os.path.basename(addresses))[0]
        geocoded = os.path.join(cache, "geocoded", f"{stem}.geocoded.csv")
        geocode_file(addresses, list(geocode_columns), geocoded, url=geocoder_url, progress=not quiet)
        addresses = geocoded
        cols = {**GEOCODED_ROLES, **cols}
    inputs = complete_inputs(dept, addresses, communes, circonscriptions, bv_table, streets,
                             osm_streets and params.method != "voronoi", Cache(cache), offline, progress=not quiet,
                             columns=cols)
    if inputs["streets_note"] and not quiet:
        click.echo(f"Warning: {inputs['streets_note']}", err=True)
    addresses = inputs["addresses"]
    result = run_build(addresses, inputs["communes"], dept=dept, circonscriptions=inputs["circonscriptions"],
                       columns=cols, commune_code_column=commune_code_column, commune_name_column=commune_name_column,
                       bv_table=inputs["bv_table"], params=params, progress=not quiet, streets=inputs["streets"],
                       streets_source=inputs["streets_source"], streets_note=inputs["streets_note"])
    files = result.write(*outputs)
    if not quiet:
        _summary(result.report, files, time.perf_counter() - t0)


def _build_many(depts, dept_arg, addresses, communes, circonscriptions, outputs, cols, params, quiet, cache, offline,
                streets, osm_streets):
    from .fetch import Cache, fetch_national, fetch_streets
    from .national import build_departements, cut_columns
    from .outputs import check_build_outputs

    if streets:
        raise click.BadParameter("one line file cannot serve several départements; leave it out to fetch "
                                 "OpenStreetMap lines for each", param_hint="--streets")
    name = "france" if dept_arg.strip().lower() in ("all", "france", "*") else "_".join(depts)
    outputs = outputs or (os.path.join("data", "out", f"bv_{name}.gpkg"),)
    check_build_outputs(outputs)  # before any download or computation
    got = fetch_national(addresses, communes, circonscriptions, Cache(cache), offline, progress=not quiet)
    addresses, communes, circonscriptions = got["addresses"], got["communes"], got["circonscriptions"]
    t0 = time.perf_counter()
    lines = None
    if osm_streets and params.method != "voronoi":  # per département, cached; a failure is noted, not fatal
        def lines(dept, roll):
            return fetch_streets(dept, roll, Cache(cache), offline, cut_columns(roll))
    else:
        params = replace(params, method="voronoi" if params.method == "auto" else params.method)
    result = build_departements(depts, addresses, communes, circonscriptions, columns=_parse_cols(cols),
                                params=params, progress=not quiet, streets=lines)
    files = result.write(*outputs)
    if not quiet:
        rep = result.report
        click.echo(f"{len(rep['departements_built'])} départements built of {len(depts)} asked; "
                   f"{rep['counts'].get('bv_drawn', 0)} BV drawn in {time.perf_counter() - t0:.1f} s", err=True)
        if rep["departements_missing"]:
            click.echo("not built: " + ", ".join(f"{m['departement']} ({m['reason']})"
                                                 for m in rep["departements_missing"][:10]), err=True)
        for f in files:
            click.echo(f"wrote {f}", err=True)


def _summary(report, files, seconds):
    c = report["counts"]
    click.echo(f"{c['bv_drawn']} BV drawn of {c['bv_in_roll']} in the roll, {c['communes']} communes, "
               f"{c['seeds']} seeds from {c['address_rows']} rows in {seconds:.1f} s", err=True)
    if report["rows_dropped"]:
        click.echo("rows dropped: " + ", ".join(f"{k} {v}" for k, v in report["rows_dropped"].items()), err=True)
    if report["bv_not_drawn"]:
        click.echo(f"{len(report['bv_not_drawn'])} BV not drawn: see the report", err=True)
    if report.get("bv_multipart"):
        click.echo(f"{len(report['bv_multipart'])} BV in several pieces: see bv_multipart in the report for why",
                   err=True)
    if report.get("communes_repaired"):
        click.echo(f"Warning: {len(report['communes_repaired'])} invalid commune outline(s) repaired ("
                   + ", ".join(f"{r['code']}: {r['reason']}" for r in report["communes_repaired"][:3])
                   + "); their BVs are flagged outline_repaired", err=True)
    if report["unknown_communes"]:
        click.echo(f"{c['rows_unknown_commune']} rows in {c['unknown_communes']} communes not among the outlines "
                   "(e.g. " + ", ".join(repr(u["commune"]) for u in report["unknown_communes"][:3])
                   + "): see unknown_communes in the report", err=True)
    for f in files:
        click.echo(f"wrote {f}", err=True)


@main.command()
@click.argument("input_csv", type=click.Path(exists=True, dir_okay=False))
@click.option("--columns", "columns", multiple=True, required=True,
              help="Address column(s), joined in this order (e.g. --columns adresse --columns cp --columns ville).")
@click.option("--postcode", help="Postcode column, used as a filter by the geocoder.")
@click.option("--citycode", help="Expected INSEE code column: used as a filter, and answers elsewhere are flagged.")
@click.option("--url", default="https://api-adresse.data.gouv.fr", show_default=True,
              help="BAN API, or a self-hosted addok with addok-csv (e.g. http://127.0.0.1:7878).")
@click.option("--min-score", type=float, default=0.5, show_default=True, help="Flag answers below this score.")
@click.option("--chunk", type=int, default=2000, show_default=True, help="Rows per request.")
@click.option("--only-weak", is_flag=True,
              help="INPUT is a REU address table: re-geocode only rows with a weak geo_type and update them.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Geocoded CSV.")
@quiet_option
@_errors_to_click
def geocode(input_csv, columns, postcode, citycode, url, min_score, chunk, only_weak, output, quiet):
    """Geocode a raw address list (BAN /search/csv/ protocol); flags unusable answers in geo_reject.

    Build from the result with --col geo_type=result_type --col geo_score=result_score
    --col citycode=result_citycode.

    \b
    Examples:
      decoupage-bv geocode liste.csv --columns adresse --columns cp --columns ville -o liste_geocodee.csv
      decoupage-bv geocode liste.csv --columns adresse --columns ville --url http://127.0.0.1:7878 -o out.csv
      decoupage-bv geocode table-adresses-reu_29.csv --only-weak --columns geo_adresse -o improved.csv
    """
    from .geocode import geocode_file

    counts = geocode_file(input_csv, list(columns), output, url=url, postcode=postcode, citycode=citycode,
                          min_score=min_score, chunk_rows=chunk, progress=not quiet, only_weak=only_weak)
    if not quiet:
        click.echo("rows: " + ", ".join(f"{k or 'usable'} {v}" for k, v in counts.items()), err=True)
        click.echo(f"wrote {output}", err=True)


@main.command()
@click.option("--dept", required=True, help="Département: 01…95, 2A, 2B, 971…976.")
@click.option("--osm-streets/--no-osm-streets", default=True, show_default=True,
              help="Also fetch street, rail and river lines from OpenStreetMap (a failure there is only a warning).")
@cache_options
@quiet_option
@_errors_to_click
def fetch(dept, osm_streets, cache, offline, quiet):
    """Download and cache what a build of DEPT needs (REU tables cut to it, communes, constituencies, streets).

    \b
    Examples:
      decoupage-bv fetch --dept 31
      decoupage-bv fetch --dept 2A --no-osm-streets
      decoupage-bv fetch --dept 974 --offline     # what is cached, and what is missing
    """
    from .fetch import Cache, complete_inputs

    got = complete_inputs(dept, osm_streets=osm_streets, cache=Cache(cache), offline=offline, progress=not quiet)
    for name in ("addresses", "bv_table", "communes", "circonscriptions", "streets"):
        if got[name]:
            click.echo(f"{name}: {got[name]}")
    if got["streets_note"]:
        click.echo(f"Warning: {got['streets_note']}", err=True)


@main.command()
@click.argument("predicted", type=click.Path(exists=True, dir_okay=False))
@click.argument("official", type=click.Path(exists=True, dir_okay=False))
@click.option("--test-addresses", type=click.Path(exists=True, dir_okay=False),
              help="Held-out addresses labelled with their BV (roll format).")
@click.option("--col", "cols", multiple=True, metavar="ROLE=COLUMN", help="Column mapping of --test-addresses.")
@click.option("--official-commune", help="INSEE code when OFFICIAL has only a bare BV number (uniq_bdv).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_errors_to_click
def evaluate(predicted, official, test_addresses, cols, official_commune, as_json):
    """Score PREDICTED polygons against OFFICIAL ones: area given to the right BV, V-measure, BVs in pieces,
    and with --test-addresses the share of held-out addresses in their own BV.

    \b
    Examples:
      decoupage-bv evaluate data/out/bv_75.gpkg official.geojson --test-addresses test.csv
      decoupage-bv evaluate data/out/bv_31.gpkg toulouse_2024.geojson --official-commune 31555 --json
    """
    from .evaluate import evaluate as run_eval

    scores = run_eval(predicted, official, test_addresses=test_addresses, columns=_parse_cols(cols),
                      official_commune=official_commune)
    _print_scores(scores, as_json)


def _print_scores(scores, as_json):
    if as_json:
        click.echo(json.dumps(scores, indent=2))
        return
    for k, v in scores.items():
        click.echo(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}")


@main.command()
@click.option("--out-dir", default=os.path.join("data", "out", "demo"), show_default=True,
              type=click.Path(file_okay=False), help="Where to write the outputs.")
@click.option("--synthetic", is_flag=True,
              help="Build a synthetic territory whose true polling stations are known, and print the scores.")
@click.option("--json", "as_json", is_flag=True, help="With --synthetic: print the scores as JSON.")
@tessellation_options
@quiet_option
@_errors_to_click
def demo(out_dir, synthetic, as_json, params, quiet):
    """Build real polling stations from the sample shipped with the package, offline: the INSEE REU rows of
    three Finistère communes (Concarneau, Douarnenez, Lanneuffret), their outlines and constituencies.
    Writes GeoPackage, GeoJSON, Shapefile, the report, a PNG and an HTML map.

    \b
    Examples:
      decoupage-bv demo
      decoupage-bv demo --out-dir /tmp/demo
      decoupage-bv demo --synthetic --json
    """
    from .demo import run_demo, run_synthetic

    t0 = time.perf_counter()
    if synthetic:
        result, scores, files = run_synthetic(out_dir, params, progress=not quiet)
        if not quiet:
            _summary(result.report, files, time.perf_counter() - t0)
        _print_scores(scores, as_json)
        return
    result, files = run_demo(out_dir, params, progress=not quiet)
    _summary(result.report, files, time.perf_counter() - t0)
    click.echo(f"Open {files[0]} in QGIS, or {files[-1]} in a browser.", err=True)


@main.command()
@click.option("--polygons", required=True, type=click.Path(exists=True, dir_okay=False),
              help="BV polygons (our output, or official ones with id_bv / codeBureauVote).")
@click.option("--results", "results_files", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="Results per BV (Ministry 2017–2024 layouts, Toulouse Métropole, or any CSV); repeatable.")
@click.option("--label", "labels", multiple=True, help="Column prefix per --results file (default: file name).")
@click.option("--col", "cols", multiple=True, metavar="ROLE=COLUMN",
              help="Results column for a role: commune, dept, code_bv, id_bv, circonscription, inscrits, votants, "
                   "abstentions, blancs, nuls, exprimes.")
@click.option("--vote-column", "vote_columns", multiple=True, help="A column of votes for one list (generic CSV).")
@click.option("--commune", help="INSEE code for results carrying only a BV number.")
@click.option("--set-circonscription", is_flag=True, help="Take each BV's constituency from the results.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Joined polygons (.gpkg, .geojson, .shp); the long table and the join report go beside it.")
@quiet_option
@_errors_to_click
def join(polygons, results_files, labels, cols, vote_columns, commune, set_circonscription, output, quiet):
    """Join results per BV to polygons; report unmatched rows on both sides.

    \b
    Examples:
      decoupage-bv join --polygons data/out/bv_29.gpkg --results resultats-t1.csv -o data/out/bv_29_t1.gpkg
      decoupage-bv join --polygons data/out/bv_29.gpkg --results t1.csv --results t2.csv --label t1 \\
          --label t2 -o data/out/bv_29_leg2024.gpkg
      decoupage-bv join --polygons bv.gpkg --results mine.csv --col commune=insee --col code_bv=bureau \\
          --vote-column liste_a --vote-column liste_b -o out.gpkg
    """
    from .results import join_files

    if labels and len(labels) != len(results_files):
        raise click.BadParameter("give one --label per --results file", param_hint="--label")
    joined, files = join_files(polygons, results_files, output, labels=labels or None, columns=_parse_cols(cols),
                               vote_columns=vote_columns or None, commune=commune,
                               set_circonscription=set_circonscription)
    if not quiet:
        for source, s in joined.summary.items():
            click.echo(f"{source} ({s['layout']}): {s['matched']} of {s['result_bv']} BV matched, "
                       f"{s['unmatched_results']} result BV unmatched, {s['polygons_without_result']} polygons "
                       f"without result, {s['rejected_rows']} rows rejected", err=True)
        for f in files:
            click.echo(f"wrote {f}", err=True)


@main.command(name="map")
@click.argument("polygons", type=click.Path(exists=True, dir_okay=False))
@click.option("--column", "-c", required=True, help="Numeric column to map, e.g. pct_RN or participation.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="map.png / .pdf / .svg (static) or map.html (interactive).")
@click.option("--title", help="Map title (default: the column).")
@click.option("--scheme", default="quantiles", show_default=True, help="mapclassify classification.")
@click.option("-k", "--classes", default=5, show_default=True, help="Number of classes.")
@click.option("--cmap", default="viridis", show_default=True, help="Matplotlib colour map.")
@click.option("--source", default=None,
              help="Source line under a static map.")
@_errors_to_click
def map_(polygons, column, output, title, scheme, classes, cmap, source):
    """Map a COLUMN of POLYGONS (e.g. the output of join) as a choropleth.

    \b
    Examples:
      decoupage-bv map data/out/bv_29_leg2024.gpkg -c t1_pct_RN -o rn.png
      decoupage-bv map data/out/bv_29_leg2024.gpkg -c t1_participation -o participation.html
      decoupage-bv map bv.gpkg -c pct_UG --scheme naturalbreaks -k 7 --title "Union de la gauche" -o ug.pdf
    """
    from .maps import draw
    from .sources import read_vector

    draw(read_vector(polygons), column, output, title=title, scheme=scheme, k=classes, cmap=cmap,
         source=source, label=polygons)
    click.echo(f"wrote {output}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
