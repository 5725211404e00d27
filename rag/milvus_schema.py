"""The Milvus collections that hold lorag's knowledge bases, and the client calls the Milvus store makes.

One Milvus database (any: milvus-lite, Standalone, a cluster, Zilliz Cloud; `pymilvus` reaches
them all by URI) holds every knowledge base in these collections:

- `lorag_knowledge_bases`: a row per knowledge base, `name` (primary key) and `settings` (JSON:
  the `rag.folder.Manifest` fields, embedder and chunking included, and the chunk `generation`).
- `lorag_documents`: a row per committed document, keyed `<kb>/<document id>`: filename, sha256,
  size, created, metadata (JSON), chunk count. Its existence is what makes the chunks visible.
- `lorag_operations`: an upload or delete under way, keyed `<kb>/<document id>/<owner>`: the
  operation, the `owner` (the gateway) doing it and when it last wrote (`updated`); see
  `rag.milvus_store`.
- `lorag_attachments`, `lorag_attachment_batches`: the files attached to a knowledge base as a vector
  store and their batches, keyed `<kb>/<id>` (`rag.milvus_attachments`).
- `lorag_document_texts`: each document's text and segments (JSON), cut into pieces of at most
  `TEXT_PIECE` characters, so that another embedder or chunking can cut it again.
- `lorag_chunks_<kb>_g<generation>`: one collection per knowledge base and generation (a change
  of embedder or chunking makes the next one): the chunk `id` (INT64, derived from the document's
  sha256 and the chunk's ordinal, so the same content always has the same ids), `document_id`,
  `ordinal`, `text`, `indexed` (the section trail and text), `terms` (its BM25 terms, see below, an
  analysed VARCHAR), `sparse` (their BM25 vector, made by Milvus's BM25 function), `dense` (the
  embedder's unit vector, inner product) and `place` (JSON: start, end, page, section).

Every collection is created with Strong consistency, so a read sees every write acknowledged
before it, from any client. Milvus needs a vector field in each collection: all but the chunks' carry a
2-dimensional placeholder `_v`.

**BM25 terms are lorag's, not Milvus's analyzer's**, so that both backends rank by the same terms in
every language: a chunk's (and a query's) tokens come from `rag.tokenize` (the folder's BM25 tokens:
stemmed English words without stopwords, jieba's Chinese words, bigrams of other spaceless scripts),
and each is written as the 16 hex digits of its blake2b digest (`bm25_terms`). Every Milvus analyzer
keeps such a term whole and unchanged (milvus-lite's `\w+`, Milvus's standard tokenizer), where Milvus's
own analyzers would cut, stem (milvus-lite ignores the stemmer) or drop words differently from the
folder and segment no Chinese. BM25 itself is Lucene's, k1=0.9, b=0.4 (as `rag.index.BM25Index`).
`TERMS_VERSION` names this scheme in a knowledge base's settings row; a collection written under another
is rewritten at start (`rag.milvus_bases`). This module knows nothing about documents' visibility,
uploads or ranking.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient
from pymilvus.exceptions import MilvusException

from rag.tokenize import TOKENIZER_VERSION, Tokenizer

KNOWLEDGE_BASES, DOCUMENTS, TEXTS = "lorag_knowledge_bases", "lorag_documents", "lorag_document_texts"
OPERATIONS = "lorag_operations"
ATTACHMENTS, ATTACHMENT_BATCHES = "lorag_attachments", "lorag_attachment_batches"
TEXT_PIECE = 16_000
"""Characters of a document's stored text per row (a VARCHAR holds at most 65,535 bytes)."""
MAX_CHUNK_TEXT = 65_535
TERMS_VERSION = f"{TOKENIZER_VERSION}/blake2b-64"
MAX_TERMS = MAX_CHUNK_TEXT // 17
"""Terms kept per chunk (16 hex digits and a space each); a chunk the embedder reads whole has far fewer."""
ANALYZER = {"tokenizer": "standard"}
BM25_PARAMS = {"bm25_k1": 0.9, "bm25_b": 0.4}
PLACEHOLDER = [0.0, 1.0]
PAGE = 1000
"""Rows per page when reading a whole set (a query returns at most 16,384 rows)."""
logging.getLogger("pymilvus").setLevel(logging.ERROR)  # the query iterator warns about client-side timestamps


def connect(uri: str, token: str | None = None, db_name: str | None = None) -> MilvusClient:
    """A client of the database `db_name` ("default" if None) at `uri`, its shared collections made."""
    client = MilvusClient(uri=uri, token=token or "", db_name=db_name or "")
    existing = set(client.list_collections())
    for name in _SHARED:
        if name not in existing:
            try:
                _create(client, name, _shared_schema(client, name), _placeholder_index(client))
            except MilvusException as e:  # another gateway, starting at the same time, made it first
                if "already exists" not in str(e):
                    raise
                _load_once_indexed(client, name)
    return client


def _load_once_indexed(client: MilvusClient, name: str, timeout_s: float = 60) -> None:
    """Load a collection another client is making: its index may not exist yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.load_collection(name)
            return
        except MilvusException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def chunks_collection(kb: str, generation: int) -> str:
    """The chunk collection of knowledge base `kb` (a valid name) at `generation`."""
    return f"{_chunks_prefix(kb)}{generation}"


def _chunks_prefix(kb: str) -> str:
    """What every chunk collection of `kb` starts with, and no other knowledge base's ('_', '-' spelled out)."""
    return "lorag_chunks_" + kb.replace("_", "_u").replace("-", "_h") + "_g"


def create_chunks(client: MilvusClient, kb: str, generation: int, dimension: int) -> str:
    """Make (anew) the chunk collection of `kb` at `generation` for vectors of `dimension`; its name."""
    name = chunks_collection(kb, generation)
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("document_id", DataType.VARCHAR, max_length=64)
    schema.add_field("ordinal", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_CHUNK_TEXT)
    schema.add_field("indexed", DataType.VARCHAR, max_length=MAX_CHUNK_TEXT)
    schema.add_field("terms", DataType.VARCHAR, max_length=MAX_CHUNK_TEXT, enable_analyzer=True,
                     analyzer_params=ANALYZER)  # fmt: skip
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("place", DataType.JSON)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                 output_field_names=["sparse"]))  # fmt: skip
    index = client.prepare_index_params()
    index.add_index("dense", index_type="AUTOINDEX", metric_type="IP")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
    _create(client, name, schema, index)
    return name


def bm25_terms(texts: Sequence[str]) -> list[str]:
    """Each text's BM25 terms as the chunk collections store and search them (see the module docstring)."""
    return [" ".join(_digest(token) for token in tokens[:MAX_TERMS]) for tokens in Tokenizer()(list(texts))]


@lru_cache(maxsize=1 << 16)
def _digest(token: str) -> str:
    return hashlib.blake2b(token.encode(), digest_size=8).hexdigest()


def chunk_collections(client: MilvusClient, kb: str) -> list[str]:
    """Every chunk collection of `kb`, of any generation."""
    prefix = _chunks_prefix(kb)
    return [name for name in client.list_collections() if name.startswith(prefix) and name[len(prefix) :].isdigit()]


def rows(client: MilvusClient, collection: str, where: str, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Every row of `collection` matching the filter expression `where`, with `fields`, a page at a time."""
    pages = client.query_iterator(collection, batch_size=PAGE, filter=where, output_fields=list(fields))
    try:
        while page := pages.next():
            yield from page
    finally:
        pages.close()


def quoted(value: str) -> str:
    """`value` as a string literal of Milvus's filter expressions."""
    return json.dumps(value)


def one_of(field: str, values: Sequence[Any]) -> str:
    """The filter expression `field in [values]`."""
    return f"{field} in {json.dumps(list(values))}"


def _create(client: MilvusClient, name: str, schema: Any, index: Any) -> None:
    """Create, index and load a collection; the index is not waited for (Milvus's load waits for it, while
    pymilvus would poll every half second)."""
    client.create_collection(name, schema=schema, consistency_level="Strong")
    client.create_index(name, index, sync=False)
    client.load_collection(name)


def _placeholder_index(client: MilvusClient) -> Any:
    index = client.prepare_index_params()
    index.add_index("_v", index_type="FLAT", metric_type="L2")
    return index


def _varchar(length: int) -> tuple[Any, dict[str, Any]]:
    return DataType.VARCHAR, {"max_length": length}


_INT, _JSON = (DataType.INT64, {}), (DataType.JSON, {})
_KB = ("kb", *_varchar(64))
_SHARED: dict[str, tuple[tuple[str, int], tuple[tuple[str, Any, dict[str, Any]], ...]]] = {
    KNOWLEDGE_BASES: (("name", 64), (("settings", *_JSON),)),
    DOCUMENTS: (("key", 160), (_KB, ("id", *_varchar(64)), ("filename", *_varchar(4096)), ("sha256", *_varchar(64)),
                               ("size", *_INT), ("created", *_INT), ("metadata", *_JSON), ("chunk_count", *_INT))),
    OPERATIONS: (("key", 700), (_KB, ("document_id", *_varchar(64)), ("operation", *_varchar(16)),
                                ("owner", *_varchar(512)), ("updated", *_INT))),
    TEXTS: (("key", 200), (_KB, ("document_id", *_varchar(64)), ("part", *_INT),
                           ("body", *_varchar(MAX_CHUNK_TEXT)))),
    ATTACHMENTS: (("key", 600), (_KB, ("id", *_varchar(512)), ("seq", *_INT), ("created", *_INT),
                                 ("status", *_varchar(16)), ("batch", *_varchar(512)), ("body", *_JSON),
                                 ("owner", *_varchar(512)), ("updated", *_INT))),
    ATTACHMENT_BATCHES: (("key", 600), (_KB, ("id", *_varchar(512)), ("created", *_INT),
                                        ("cancelled", DataType.BOOL, {}))),
}  # fmt: skip
"""Each shared collection: its VARCHAR primary key (name, length) and its other fields, in order."""


def _shared_schema(client: MilvusClient, collection: str) -> Any:
    """The schema of a shared collection (:data:`_SHARED`), with the 2-dimensional placeholder vector last."""
    (primary, length), fields = _SHARED[collection]
    schema = client.create_schema(auto_id=False)
    schema.add_field(primary, DataType.VARCHAR, is_primary=True, max_length=length)
    for name, kind, options in fields:
        schema.add_field(name, kind, **options)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
    return schema
