"""The filter grammar of ``rag.query``: flat mappings and OpenAI's comparison and compound objects, on SQLite."""

from __future__ import annotations

import pytest

from rag.errors import InvalidFilter
from rag.query import MODES, Comparison, Compound, parse_filters
from rag.retriever import retrieve

DOCS = {
    "a.txt": (b"Alpha report on the harbour bridge.", {"team": "ops", "year": 2021, "public": True}),
    "b.txt": (b"Beta report on the harbour bridge.", {"team": "hr", "year": 2023, "public": False}),
    "c.txt": (b"Gamma report on the harbour bridge.", {"team": "ops", "year": 2024}),
    "d.txt": (b"Delta report on the harbour bridge.", {"year": 2019}),
}


def eq(key, value):
    return {"type": "eq", "key": key, "value": value}


@pytest.fixture
def reports(kb):
    for name, (data, metadata) in DOCS.items():
        kb.ingest(name, data, metadata=metadata)
    return kb


def matching(kb, filters) -> list[str]:
    ids = kb.database.document_ids(filters)
    return sorted(kb.document(i).filename for i in ids)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"team": "ops"}, ["a.txt", "c.txt"]),  # the flat mapping keeps working
        ({"team": ["hr", "x"], "year": 2023}, ["b.txt"]),
        (eq("team", "ops"), ["a.txt", "c.txt"]),
        ({"type": "ne", "key": "team", "value": "ops"}, ["b.txt", "d.txt"]),  # no key: not equal
        ({"type": "gt", "key": "year", "value": 2021}, ["b.txt", "c.txt"]),
        ({"type": "gte", "key": "year", "value": 2021}, ["a.txt", "b.txt", "c.txt"]),
        ({"type": "lt", "key": "year", "value": 2021}, ["d.txt"]),
        ({"type": "lte", "key": "year", "value": 2021.0}, ["a.txt", "d.txt"]),
        ({"type": "in", "key": "team", "value": ["hr", "ops"]}, ["a.txt", "b.txt", "c.txt"]),
        ({"type": "nin", "key": "team", "value": ["hr"]}, ["a.txt", "c.txt", "d.txt"]),
        ({"type": "in", "key": "team", "value": []}, []),
        (eq("public", True), ["a.txt"]),
        (eq("filename", "d.txt"), ["d.txt"]),
        ({"type": "and", "filters": [eq("team", "ops"), {"type": "gt", "key": "year", "value": 2022}]}, ["c.txt"]),
        (
            {"type": "or", "filters": [eq("team", "hr"), {"type": "lt", "key": "year", "value": 2020}]},
            ["b.txt", "d.txt"],
        ),
        (
            {
                "type": "or",
                "filters": [
                    eq("filename", "d.txt"),
                    {"type": "and", "filters": [eq("team", "ops"), {"type": "ne", "key": "public", "value": True}]},
                ],
            },  # fmt: skip
            ["c.txt", "d.txt"],
        ),
        ({"type": "report"}, []),  # a flat filter on a metadata key named "type"
    ],
)
def test_each_operator_selects_the_documents_it_says(reports, filters, expected):
    assert matching(reports, filters) == expected


def test_retrieval_in_every_mode_keeps_to_the_filter(reports):
    compound = {"type": "and", "filters": [eq("team", "ops"), {"type": "gte", "key": "year", "value": 2024}]}
    for mode in MODES:
        assert {hit.filename for hit in retrieve(reports, "harbour bridge report", mode=mode, filters=compound)} == {
            "c.txt"
        }


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({"type": "equals", "key": "team", "value": "ops"}, "'equals'"),
        ({"type": "eq", "key": "bad key", "value": 1}, "filters.key 'bad key'"),
        ({"type": "eq", "key": "team"}, "needs a value"),
        ({"type": "eq", "key": "team", "value": {"x": 1}}, "filters.value: an object"),
        ({"type": "in", "key": "team", "value": "ops"}, "'in' compares with a list"),
        ({"type": "gt", "key": "year", "value": True}, "not a boolean"),
        ({"type": "and", "filters": []}, "non-empty list"),
        ({"type": "or", "filters": [eq("team", "ops"), {"type": "lt", "key": "year"}]}, "filters.filters[1]"),
        ({"type": "and", "filters": [eq("a", 1)], "key": "x"}, "unexpected field 'key'"),
        ({"type": "and", "filters": [["team", "ops"]]}, "filters.filters[0] must be a filter object"),
        ({"team": {"$eq": "ops"}}, "filter 'team': an object"),
        ({"type": "eq", "key": "year", "value": 2**70}, "64-bit"),
        ([eq("team", "ops")], "must be an object"),
    ],
)
def test_bad_filters_are_refused_naming_what_is_wrong(reports, filters, named):
    with pytest.raises(InvalidFilter, match=None) as refused:
        retrieve(reports, "bridge", filters=filters)
    assert named in str(refused.value)


def test_nesting_and_size_are_bounded():
    deep: dict = eq("a", 1)
    for _ in range(9):
        deep = {"type": "and", "filters": [deep]}
    with pytest.raises(InvalidFilter, match="nest at most"):
        parse_filters(deep)
    with pytest.raises(InvalidFilter, match="at most 100 comparisons"):
        parse_filters({"type": "or", "filters": [eq("a", i) for i in range(101)]})


def test_the_flat_mapping_and_the_objects_parse_to_one_tree():
    assert parse_filters({"team": "ops", "year": [1, 2]}) == Compound(
        "and", (Comparison("eq", "team", "ops"), Comparison("in", "year", (1, 2)))
    )
    assert parse_filters({}) is None and parse_filters(None) is None
