import pytest

from decoupage_bv import codes
from decoupage_bv._errors import InputError


@pytest.mark.parametrize("raw,expected", [("1", "01"), ("31", "31"), ("2a", "2A"), ("2B", "2B"), ("974", "974")])
def test_normalise_dept(raw, expected):
    assert codes.normalise_dept(raw) == expected


@pytest.mark.parametrize("raw", ["20", "96", "977", "00", "abc"])
def test_normalise_dept_rejects(raw):
    with pytest.raises(InputError):
        codes.normalise_dept(raw)


def test_metric_crs():
    assert codes.metric_crs("31") == "EPSG:2154"
    assert codes.metric_crs("2A") == "EPSG:2154"
    assert codes.metric_crs("971") == codes.metric_crs("972") == "EPSG:5490"
    assert codes.metric_crs("973") == "EPSG:2972"
    assert codes.metric_crs("974") == "EPSG:2975"
    assert codes.metric_crs("976") == "EPSG:4471"


def test_commune_codes():
    assert codes.normalise_commune("1001") == "01001"
    assert codes.normalise_commune("1001.0") == "01001"
    assert codes.normalise_commune("2a004") == "2A004"
    assert codes.normalise_commune("3155") == "03155"
    assert codes.normalise_commune("x") is None
    assert codes.dept_of_commune("97411") == "974"
    assert codes.dept_of_commune("2B033") == "2B"
    assert codes.arrondissement_parent("75104") == "75056"
    assert codes.arrondissement_parent("69385") == "69123"
    assert codes.arrondissement_parent("13216") == "13055"
    assert codes.arrondissement_parent("13217") is None


def test_split_raw_bv():
    assert codes.split_raw_bv("29039_1") == ("29039", "1")
    assert codes.split_raw_bv("04079_1 - 1") == ("04079", "1 - 1")
    assert codes.split_raw_bv("90010_B-1") == ("90010", "B-1")
    assert codes.split_raw_bv("09123_") == ("09123", "")
    assert codes.split_raw_bv("2A004_3") == ("2A004", "3")
    assert codes.split_raw_bv("12") == (None, "12")


def test_assign_codes_bv_real_shapes():
    got = codes.assign_codes_bv(["1", "2", "10"])
    assert {k: v[0] for k, v in got.items()} == {"1": "0001", "2": "0002", "10": "0010"}
    # '1 - 1' takes its leading number when nobody else has it
    assert codes.assign_codes_bv(["1 - 1"])["1 - 1"] == ("0001", "leading_number")
    # '1 - 1' and '1 - 2' both lead with 1: compacted instead, still unique
    got = codes.assign_codes_bv(["1 - 1", "1 - 2"])
    assert got["1 - 1"][0] == "0011" and got["1 - 2"][0] == "0012"
    assert codes.assign_codes_bv(["B-1"])["B-1"] == ("00B1", "alphanumeric")
    assert codes.assign_codes_bv([""])[""] == ("0000", "empty_label")
    # collision between '11' and compacted '1-1' gets a unique suffix, flagged ambiguous
    got = codes.assign_codes_bv(["11", "1-1", "1-2"])
    assert got["11"] == ("0011", None)
    assert len({v[0] for v in got.values()}) == 3
    assert "ambiguous" in {v[1] for v in got.values()}


@pytest.mark.parametrize("raw,dept,expected", [
    ("3101", None, "31-01"), ("31-01", None, "31-01"), ("2A01", None, "2A-01"), ("97402", None, "974-02"),
    ("08", "31", "31-08"), ("8", "29", "29-08"), ("", "31", None), ("x", None, None),
])
def test_circonscription_label(raw, dept, expected):
    assert codes.circonscription_label(raw, dept) == expected


@pytest.mark.parametrize("dtype", ["string[pyarrow]", object])
def test_parse_numbers_plain_and_french(dtype):
    import numpy as np
    import pandas as pd

    from decoupage_bv.sources import parse_numbers

    plain = pd.Series(["1.5", "-3e2", None, "2", "0.000001"], dtype=dtype)
    assert np.array_equal(parse_numbers(plain).to_numpy(), [1.5, -300.0, np.nan, 2.0, 1e-6], equal_nan=True)
    # decimal commas, spaces, text: not for Arrow's parser; the same answers as before, row by row
    mixed = pd.Series([" 2,45", "1 234", "abc", "", "7"], dtype=dtype)
    assert np.array_equal(parse_numbers(mixed).to_numpy(), [2.45, np.nan, np.nan, np.nan, 7.0], equal_nan=True)
    assert np.array_equal(parse_numbers(mixed, drop_spaces=True).to_numpy(), [2.45, 1234.0, np.nan, np.nan, 7.0],
                          equal_nan=True)
