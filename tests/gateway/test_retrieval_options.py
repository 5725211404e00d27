"""Retrieval options are declared once: every surface that retrieves takes rag's fields, with the same limits."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from pydantic import ValidationError
from typer.main import get_command

from gateway.api.knowledge_protocol import SearchRequest
from gateway.api.protocol import RagOptions
from gateway.cli.main import app
from gateway.knowledge.retrieval import Retrieval, RetrievalFields
from rag.errors import InvalidFilter, InvalidMode
from rag.query import MAX_TOP_K, RetrievalOptions

WIRE = {"top_k", "mode", "min_score", "filters"}


def test_the_wire_model_carries_rags_request_fields_and_builds_rags_options():
    fields = {field.name for field in dataclasses.fields(RetrievalOptions)}
    assert set(RetrievalFields.model_fields) == WIRE <= fields
    built = Retrieval(kb="docs", top_k=7, mode="bm25", min_score=0.5, filters={"team": "a"}).options()
    assert built == RetrievalOptions(top_k=7, mode="bm25", min_score=0.5, filters={"team": "a"})


@pytest.mark.parametrize("model", [RagOptions, SearchRequest, Retrieval])
def test_every_request_model_takes_the_same_fields_with_the_same_limits(model):
    assert WIRE <= set(model.model_fields)
    extra = {"query": "q"} if model is SearchRequest else {"kb": "docs"}
    for bad in ({"top_k": MAX_TOP_K + 1}, {"top_k": 0}, {"mode": "fuzzy"}, {"min_score": float("nan")},
                {"filters": {"team": {"nested": 1}}}):  # fmt: skip
        with pytest.raises(ValidationError):
            model(**extra, **bad)


def cli_options(*path: str) -> set[str]:
    command = get_command(app)
    for name in path:
        command = command.get_command(None, name)
    return {param.name for param in command.params}


@pytest.mark.parametrize("path", [("kb", "search"), ("kb", "raft-data")])
def test_every_command_that_retrieves_takes_the_same_options(path):
    assert WIRE <= cli_options(*path)


def test_rag_checks_its_options_itself():
    refused = [
        ({"top_k": 0}, ValueError),
        ({"mode": "x"}, InvalidMode),
        ({"filters": {"a": {}}}, InvalidFilter),
        ({"dense_weight": 0, "bm25_weight": 0}, ValueError),
        ({"min_score": float("inf")}, ValueError),
    ]
    for bad, error in refused:
        with pytest.raises(error):
            RetrievalOptions(**bad)


def test_retrieve_takes_the_options_and_nothing_else():
    from rag.retriever import retrieve

    assert list(inspect.signature(retrieve).parameters)[:3] == ["kb", "query", "options"]
