"""``lorag kb``: knowledge bases from the command line, on the folder ``LORAG_KB_DIR``.

Each command runs the same :class:`gateway.knowledge.service.Knowledge` calls as the HTTP API, so it
validates and fails the same way; an error prints one line on stderr and exits 1. ``add`` takes
files and folders (searched recursively for supported types) and shows progress bars while it
reads, chunks and embeds, and so does ``reindex`` (another embedder or chunking: every document
cut again and re-embedded). The commands open the folder directly: while ``lorag serve`` has the
same knowledge base open, change it through the API instead, since a running server does not
see another process's writes. ``eval-beir`` measures retrieval on a BEIR dataset in a temporary
knowledge base (``--tune``: before and after tuning the embedder on the corpus alone); ``tune``
(:mod:`gateway.cli.kb_tune`) tunes a knowledge base's embedder on its documents. This module
knows nothing about engines or chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from tqdm.auto import tqdm

from gateway.cli import retrieval_options as options
from gateway.cli.common import fail
from gateway.cli.data import raft_data
from gateway.cli.kb_tune import tune_command
from gateway.errors import LoragError, as_lorag_error
from gateway.knowledge.service import Knowledge, Upload
from gateway.settings import get_settings
from rag.errors import RagError
from rag.loaders import SUPPORTED_EXTENSIONS
from rag.query import DEFAULT_TOP_K

T = TypeVar("T")
EMBEDDER_HELP = "sentence-transformers id or path (default: LORAG_EMBEDDER)."
kb_app = typer.Typer(
    help="Knowledge bases: create, add documents, list, remove, search, re-index, evaluate.", no_args_is_help=True
)


def _knowledge() -> Knowledge:
    settings = get_settings()
    return Knowledge.from_settings(settings)


def _run(work: Awaitable[T]) -> T:
    try:
        return asyncio.run(work)
    except (LoragError, RagError) as e:
        fail(as_lorag_error(e).message)


@kb_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="1-64 of a-z, 0-9, '-' and '_'; chat with it as <model>@<name>.")],
    embedder: Annotated[
        str | None, typer.Option(help="sentence-transformers id or path (default: LORAG_EMBEDDER).")
    ] = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Most embedder tokens per chunk.")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Tokens shared by consecutive chunks.")] = None,
) -> None:
    """Create an empty knowledge base."""
    kb = _run(_knowledge().create(name, embedder, chunk_tokens, chunk_overlap))
    chunking = kb.manifest.chunking
    typer.echo(f"created {name}: {kb.manifest.embedder}, chunks of {chunking.chunk_size} tokens "
               f"overlapping by {chunking.chunk_overlap}, in {kb.path}")  # fmt: skip


@kb_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    paths: Annotated[list[Path], typer.Argument(help="Files, or folders searched recursively for supported types.")],
    metadata: Annotated[
        str | None, typer.Option(help='A JSON object stored with every document, e.g. {"team": "a"}.')
    ] = None,
) -> None:
    """Add documents (.txt .md .html .pdf .docx .json .jsonl); unchanged documents are skipped."""
    extra = options.json_object(metadata, "--metadata") if metadata is not None else None
    knowledge = _knowledge()
    before = {record.id for record in _run(knowledge.documents(name))}
    files = _files(paths)
    uploads = [Upload(path.name, path.read_bytes()) for path in tqdm(files, desc="reading", unit="file")]
    records = _run(knowledge.add(name, uploads, extra, progress=True))
    for record in {record.id: record for record in records}.values():
        state = "unchanged" if record.id in before else "added"
        typer.echo(f"{state:<9} {record.id}  {record.filename}  {record.chunk_count} chunks")


@kb_app.command("reindex")
def reindex(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    embedder: Annotated[str | None, typer.Option(help="The new embedder: sentence-transformers id or path.")] = None,
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Most embedder tokens per chunk (default: kept, at most the embedder's input).")
    ] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Tokens shared by consecutive chunks.")] = None,
) -> None:
    """Change the embedder or chunking: cut every document again and re-embed every chunk."""
    if embedder is None and chunk_tokens is None and chunk_overlap is None:
        fail("give --embedder, --chunk-tokens or --chunk-overlap")
    kb = _run(_knowledge().update(name, embedder, chunk_tokens, chunk_overlap, progress=True))
    chunking = kb.manifest.chunking
    documents, chunks = kb.database.counts()
    typer.echo(f"{name}: {kb.manifest.embedder}, chunks of {chunking.chunk_size} tokens overlapping by "
               f"{chunking.chunk_overlap}; {documents} documents in {chunks} chunks")  # fmt: skip


@kb_app.command("ls")
def ls(name: Annotated[str | None, typer.Argument(help="List this knowledge base's documents.")] = None) -> None:
    """List knowledge bases, or the documents of one."""
    knowledge = _knowledge()
    if name is None:
        for manifest in knowledge.manifests():
            documents, chunks = knowledge.counts(manifest.name)
            typer.echo(f"{manifest.name:<24} {documents:>6} documents {chunks:>8} chunks  {manifest.embedder}")
        return
    for record in _run(knowledge.documents(name)):
        typer.echo(f"{record.id}  {record.filename:<40} {record.chunk_count:>5} chunks {record.size:>10} bytes")


@kb_app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    document_ids: Annotated[list[str] | None, typer.Argument(help="Remove only these documents.")] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before removing a whole knowledge base.")
    ] = False,
) -> None:
    """Remove documents from a knowledge base, or (no ids) the whole knowledge base."""
    knowledge = _knowledge()
    if document_ids:
        for document_id in document_ids:
            _run(knowledge.delete_document(name, document_id))
            typer.echo(f"removed {document_id} from {name}")
        return
    if not yes:
        typer.confirm(f"Remove knowledge base {name} with all its documents?", abort=True)
    _run(knowledge.delete(name))
    typer.echo(f"removed {name}")


@kb_app.command("search")
def search(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    top_k: options.TopK = DEFAULT_TOP_K,
    mode: options.Mode = "hybrid",
    min_score: options.MinScore = None,
    filters: options.Filters = None,
) -> None:
    """Show the chunks a chat with <model>@<name> would be given for this query."""
    retrieval = options.retrieval(name, top_k, mode, min_score, filters)
    hits = _run(_knowledge().search(retrieval, query))
    for rank, hit in enumerate(hits, start=1):
        where = ", ".join(str(part) for part in (hit.filename, hit.page and f"page {hit.page}", hit.section) if part)
        snippet = " ".join(hit.text.split())
        typer.echo(f"[{rank}] {hit.score:.3f}  {where}\n    {snippet[:300]}")
    if not hits:
        typer.echo("no matching chunks")


@kb_app.command("migrate")
def migrate_kb(
    name: Annotated[str, typer.Argument(help="The knowledge base to copy.")],
    to: Annotated[str, typer.Option(help="milvus (from LORAG_KB_DIR to LORAG_MILVUS_URI) or folder (back).")],
) -> None:
    """Copy a knowledge base to the other backend with its chunks and vectors (no re-embedding); counts verified."""
    from gateway.knowledge.backends import open_backend
    from rag.migrate import migrate

    if to not in ("milvus", "folder"):
        fail(f"--to is {to!r}: use milvus or folder")
    source = "folder" if to == "milvus" else "milvus"
    settings = get_settings()
    try:
        target = open_backend(settings, to)
        bases = open_backend(settings, source)
        documents, chunks = migrate(bases.get(name), target, bases.attachments(name))
    except (RagError, ValueError) as e:
        fail(as_lorag_error(e).message if isinstance(e, RagError) else str(e))
    typer.echo(f"copied {name} from {source} to {to}: {documents} documents, {chunks} chunks (counts verified); "
               f"the {source} copy is unchanged")  # fmt: skip


@kb_app.command("eval-beir")
def eval_beir(
    folder: Annotated[Path, typer.Argument(help="A BEIR dataset folder: corpus.jsonl, queries.jsonl, qrels/.")],
    embedder: Annotated[
        str | None, typer.Option(help="sentence-transformers id or path (default: LORAG_EMBEDDER).")
    ] = None,
    split: Annotated[str, typer.Option(help="The qrels split to score.")] = "test",
    tune: Annotated[
        bool, typer.Option("--tune", help="Also tune the embedder on the corpus alone and score again.")
    ] = False,
    max_pairs: Annotated[int, typer.Option(help="With --tune: training pairs at most.")] = 2000,
    keep: Annotated[Path | None, typer.Option(help="With --tune: keep the tuned embedder in this folder.")] = None,
) -> None:
    """nDCG@10 and recall@100 of BM25, dense and hybrid retrieval on a BEIR dataset (--tune: before and after)."""
    from rag.beir import evaluate, format_table
    from rag.embedder import load_embedder

    for needed in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / needed).is_file():
            fail(f"{folder} is not a BEIR folder: {needed} is missing")
    loaded = load_embedder(embedder or get_settings().embedder)
    if not tune:
        typer.echo(format_table(evaluate(folder, loaded, split=split)))
        return
    from rag.beir_tuning import evaluate_tuned
    from rag.tuning import TuningSettings

    report = evaluate_tuned(folder, loaded, TuningSettings(max_pairs=max_pairs), split=split, keep=keep)
    typer.echo(f"before tuning\n{format_table(report['before'])}\nafter tuning on the corpus alone\n"
               f"{format_table(report['after'])}\nheld-out corpus pairs: {report['tuning']['held_out_before']} -> "
               f"{report['tuning']['held_out_after']}\nseconds: {report['seconds']}")  # fmt: skip


def _files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        else:
            fail(f"no such file or folder: {path}")
    if not files:
        fail(f"no supported documents in {', '.join(map(str, paths))} ({' '.join(SUPPORTED_EXTENSIONS)})")
    return files


kb_app.command("raft-data")(raft_data)
kb_app.command("tune")(tune_command)
