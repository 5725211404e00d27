"""Fixtures for the rag tests: the hashing embedder, an empty knowledge base, file builders."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rag.embedder import HashingEmbedder
from rag.store import KnowledgeBase
from tests.documents import docx_bytes, pdf_bytes


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(64, max_tokens=48)


@pytest.fixture
def kb(tmp_path, embedder) -> KnowledgeBase:
    return KnowledgeBase.create(tmp_path / "kb", embedder)


@pytest.fixture
def make_pdf() -> Callable[[list[str]], bytes]:
    return pdf_bytes


@pytest.fixture
def make_docx() -> Callable[[list[tuple[str, str]]], bytes]:
    return docx_bytes
