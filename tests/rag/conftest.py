"""Fixtures for the rag tests: the hashing embedder, an empty knowledge base on each backend, file builders.

``kb`` is a knowledge base on the folder and, again, on Milvus (the session's milvus-lite server, a fresh
database per test); a test of the folder's own files is marked ``folder_only``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rag.embedder import HashingEmbedder, load_embedder
from rag.store import KnowledgeBase
from tests.documents import docx_bytes, pdf_bytes


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(64, max_tokens=48)


@pytest.fixture(params=["folder", "milvus"])
def kb(request, tmp_path, embedder):
    if request.param == "folder":
        return KnowledgeBase.create(tmp_path / "kb", embedder)
    if request.node.get_closest_marker("folder_only"):
        pytest.skip("the folder backend's own files")
    return milvus_bases(request, embedder).create("kb", embedder=embedder.id)


@pytest.fixture
def reopen(request):
    """``reopen(kb)``: the same knowledge base opened afresh (the folder by another opening; Milvus by another
    client, as another gateway would)."""

    def again(kb):
        if isinstance(kb, KnowledgeBase):
            return KnowledgeBase(kb.path, kb.embedder)
        return milvus_bases(request, kb.embedder, db_name=kb.bases.db_name).get(kb.name)

    return again


def milvus_bases(request, embedder=None, db_name=None, **options):
    """Knowledge bases in a fresh database of the session's Milvus; `embedder` is built for its id."""
    from rag.milvus_bases import MilvusKnowledgeBases

    def factory(embedder_id: str):
        return embedder if embedder is not None and embedder_id == embedder.id else load_embedder(embedder_id)

    db_name = db_name or request.getfixturevalue("milvus_db")
    options = {"owner": "tests", "default_embedder": "hashing-64"} | options
    bases = MilvusKnowledgeBases(request.getfixturevalue("milvus_uri"), db_name=db_name, embedder_factory=factory,
                                 **options)  # fmt: skip
    bases.request = request  # for tests that start another gateway on the same database
    return bases


@pytest.fixture
def make_pdf() -> Callable[[list[str]], bytes]:
    return pdf_bytes


@pytest.fixture
def make_docx() -> Callable[[list[tuple[str, str]]], bytes]:
    return docx_bytes
