"""The ``file_search`` tool on knowledge bases: a vector store id is a knowledge base's name.

:func:`search` retrieves from every named store with :meth:`~gateway.knowledge.service.Knowledge.search`
(``max_num_results`` as ``top_k``, ``ranking_options.score_threshold`` as ``min_score``,
``ranker: "none"`` as dense retrieval, ``filters`` passed through as rag reads them), merges the
hits by score and keeps the best ``max_num_results``. Which stores a key may search, and which
have expired, is the vector-store door's business (:class:`~gateway.knowledge.vector_stores.VectorStores`),
checked before anything is searched. :func:`with_sources` puts the hits into the system
turn exactly as a chat with ``<model>@<kb>`` gets them (:func:`rag.augment.system_prompt`), and
:func:`file_search_call` describes the search as OpenAI's output item. A result's ``file_id`` is
its document's ``file_id`` metadata (what the vector-store API stores there), else the document
id (the file id is not repeated in ``attributes``, as the vector-store search leaves it out). This module
knows nothing about engines, storage or HTTP.
"""

from __future__ import annotations

import asyncio

from gateway.api.auth import Principal
from gateway.knowledge.retrieval import Retrieval
from gateway.knowledge.vector_store_protocol import FILE_ID_KEY
from gateway.knowledge.vector_stores import VectorStores
from gateway.responses.objects import FileSearchCall, FileSearchResult, new_id
from gateway.responses.protocol import FileSearchTool
from rag.augment import system_prompt
from rag.retriever import Hit
from serve.engine import Message


def check_stores(stores: VectorStores, principal: Principal, tool: FileSearchTool) -> None:
    """404 for a vector store that does not exist or that the key may not use (another key's store, or one outside
    its knowledge-base scopes), the same answer for both; 400 ``vector_store_expired`` for an expired one: the
    vector-store door's own rules (:meth:`~gateway.knowledge.vector_stores.VectorStores.usable`)."""
    for store in tool.vector_store_ids:
        stores.usable(store, principal)


async def search(stores: VectorStores, tool: FileSearchTool, query: str) -> list[Hit]:
    """The best ``max_num_results`` hits for ``query`` over every store of ``tool``, best first; each store's
    activity recorded (it keeps an expiry away)."""
    options = tool.ranking_options
    threshold = options.score_threshold if options else None
    mode = "dense" if options and options.ranker == "none" else "hybrid"
    names = list(dict.fromkeys(tool.vector_store_ids))
    retrievals = [
        Retrieval(kb=store, top_k=tool.max_num_results, mode=mode, min_score=threshold, filters=tool.filters or {})
        for store in names
    ]
    found = await asyncio.gather(*(stores.knowledge.search(retrieval, query) for retrieval in retrievals))
    await asyncio.gather(*(stores.touch(store) for store in names))
    hits = [hit for hits in found for hit in hits]
    return sorted(hits, key=lambda hit: hit.score, reverse=True)[: tool.max_num_results]


def file_id(hit: Hit) -> str:
    """The OpenAI file id of a hit's document: its ``file_id`` metadata, else the document id."""
    value = hit.metadata.get(FILE_ID_KEY)
    return value if isinstance(value, str) and value else hit.document_id


def file_search_call(query: str, hits: list[Hit]) -> FileSearchCall:
    """The output item of a search made: its query, and every result (shown only when included)."""
    results = [
        FileSearchResult(
            attributes={k: v for k, v in hit.metadata.items() if k != FILE_ID_KEY and isinstance(v, str | int | float)},
            file_id=file_id(hit), filename=hit.filename, score=hit.score, text=hit.text,
        )
        for hit in hits
    ]  # fmt: skip
    return FileSearchCall(id=new_id("fs"), status="completed", queries=[query], results=results)


def with_sources(messages: list[Message], hits: list[Hit]) -> list[Message]:
    """``messages`` with the instruction and the numbered sources in the system turn (after the conversation's
    own system message, if any), as :meth:`Knowledge.augment` builds it; unchanged without hits."""
    if not hits:
        return messages
    own = messages[0].content if messages and messages[0].role == "system" else None
    return [Message("system", system_prompt(hits, own)), *messages[own is not None :]]
