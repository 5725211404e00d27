"""Retrieval-augmented generation: documents in, cited sources out.

The pipeline, one module per step:

    loaders   bytes of a .txt/.md/.html/.pdf/.docx/.json/.jsonl file -> Documents with segments
    splitter  Document -> Chunks sized in the embedder's tokens, with offsets and page/section
    embedder  texts -> normalised float32 vectors (sentence-transformers, or a hashing fake)
    index     FAISS dense index and BM25 index, keyed by chunk id, saved to files
    database  the SQLite file of documents and chunks, a knowledge base's source of truth
    folder    a knowledge base folder's files: kb.json, indexes kept in line with SQLite, re-cutting
    store     a knowledge base (add and delete documents, change embedder) and the collection of them
    retriever query -> ranked Hits (dense, BM25 or hybrid by reciprocal rank fusion)
    augment   messages + Hits -> messages with numbered sources, and the citations
    beir      nDCG@10 / recall@100 of the three retrieval modes on a BEIR-format folder

This package knows nothing about engines, adapters or HTTP: it reads no environment variables and
imports nothing from `serve`, `tuner` or `gateway`; callers pass plain arguments. `atomic` holds
the write-temporary-then-rename helper that the folder, the store and the indexes share.
"""
