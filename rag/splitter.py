"""Cut a Document into Chunks sized in the embedder's tokens, with offsets and page/section.

Each segment (a PDF page, a heading section) is split on its own with langchain's
RecursiveCharacterTextSplitter (Markdown-aware separators for .md), so a chunk never straddles
two pages or two sections and its `[start, end)` offsets point into the document text. A
segment's heading trail is the chunk's context: it is prepended to the text that is embedded and
BM25-indexed (`Chunk.indexed_text`), and the chunk's token budget leaves room for it. Markdown
heading trails come from the loader's segments rather than from MarkdownHeaderTextSplitter, whose
output re-joins lines and so cannot be mapped back to offsets. This module knows nothing about
embeddings, indexes or storage; it only needs a token-counting function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from rag.errors import InvalidChunking
from rag.loaders import Document, Segment

_CONTEXT_SEPARATOR = "\n\n"
_MARKDOWN_SUFFIXES = (".md", ".markdown")


@dataclass(frozen=True)
class ChunkingSettings:
    """How documents are cut; recorded in the knowledge base manifest."""

    chunk_size: int
    """Most tokens of the embedder's tokenizer in one chunk, its heading context included."""
    chunk_overlap: int
    """Tokens shared by consecutive chunks of one segment."""

    @classmethod
    def for_embedder(cls, max_tokens: int) -> ChunkingSettings:
        """The default: chunks that fill the embedder's input, overlapping by an eighth."""
        return cls(chunk_size=max_tokens, chunk_overlap=max_tokens // 8)

    def __post_init__(self) -> None:
        if self.chunk_size < 8:
            message = f"invalid chunking: a chunk size of {self.chunk_size} tokens is under the minimum of 8"
            raise InvalidChunking(message, "chunk_size")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise InvalidChunking(
                f"invalid chunking: the overlap ({self.chunk_overlap} tokens) must be at least 0 and less than "
                f"the chunk size ({self.chunk_size} tokens)",
                "chunk_overlap",
            )

    def check_fits(self, max_tokens: int, embedder_id: str = "the embedder") -> None:
        """Raise InvalidChunking if chunks of `chunk_size` tokens are longer than an embedder reads."""
        if self.chunk_size > max_tokens:
            raise InvalidChunking(
                f"a chunk size of {self.chunk_size} tokens is over the {max_tokens} tokens {embedder_id} reads: "
                f"longer chunks would be truncated when embedded; use at most {max_tokens}",
                "chunk_size",
            )

    def fitted(self, max_tokens: int) -> ChunkingSettings:
        """These settings if they fit an embedder reading `max_tokens`; else the chunk size cut to
        `max_tokens` and the overlap scaled with it."""
        if self.chunk_size <= max_tokens:
            return self
        return ChunkingSettings(max_tokens, self.chunk_overlap * max_tokens // self.chunk_size)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: `text == document.text[start:end]`."""

    ordinal: int
    text: str
    start: int
    end: int
    page: int | None = None
    section: str | None = None

    @property
    def indexed_text(self) -> str:
        return indexed_text(self.text, self.section)


def indexed_text(text: str, section: str | None) -> str:
    """What is embedded and BM25-indexed for a chunk: its heading trail, then its text."""
    return f"{section}{_CONTEXT_SEPARATOR}{text}" if section else text


def split_document(document: Document, settings: ChunkingSettings, count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Split every segment of `document` into chunks of at most `settings.chunk_size` tokens."""
    markdown = PurePath(document.name).suffix.lower() in _MARKDOWN_SUFFIXES
    chunks: list[Chunk] = []
    for segment in document.segments:
        budget = settings.chunk_size
        if segment.section:
            budget -= count_tokens(segment.section + _CONTEXT_SEPARATOR)
        budget = max(budget, settings.chunk_size // 2)  # a long heading trail may overflow; text must not starve
        body = document.text[segment.start : segment.end]
        for piece, offset in _split(body, budget, min(settings.chunk_overlap, budget // 2), count_tokens, markdown):
            start = segment.start + offset
            chunks.append(Chunk(len(chunks), piece, start, start + len(piece), segment.page, segment.section))
    return chunks


def split_again(
    name: str,
    source: Document | None,
    chunks: Sequence[Chunk],
    settings: ChunkingSettings,
    count_tokens: Callable[[str], int],
) -> list[Chunk]:
    """A stored document's chunks under `settings` and `count_tokens` (another embedder's tokens).

    With `source`, the document's text and segments as loaded: exactly what `split_document` cuts
    from it. Without (the document text was not stored): each of its current `chunks` that no
    longer fits is cut within its own span, and the chunks that fit are kept, so every chunk
    still cites the same page, section and offsets. `name` is the document's file name.
    """
    if source is not None:
        return split_document(source, settings, count_tokens)
    again: list[Chunk] = []
    for chunk in chunks:
        span = Document(name, chunk.text, (Segment(0, len(chunk.text), chunk.page, chunk.section),), "", 0)
        for piece in split_document(span, settings, count_tokens):
            start, end = chunk.start + piece.start, chunk.start + piece.end
            again.append(Chunk(len(again), piece.text, start, end, chunk.page, chunk.section))
    return again


def _split(
    text: str, budget: int, overlap: int, count_tokens: Callable[[str], int], markdown: bool
) -> list[tuple[str, int]]:
    """Pieces of `text` with their offsets in it; a text that fits is one piece."""
    stripped = text.strip()
    if not stripped:
        return []
    if count_tokens(stripped) <= budget:
        return [(stripped, text.index(stripped))]
    sizing = {"chunk_size": budget, "chunk_overlap": overlap, "length_function": count_tokens}
    if markdown:
        splitter = RecursiveCharacterTextSplitter.from_language(Language.MARKDOWN, **sizing)
    else:
        splitter = RecursiveCharacterTextSplitter(**sizing)
    pieces, cursor = [], 0
    for piece in splitter.split_text(text):  # stripped substrings of `text`, in order
        offset = text.index(piece, cursor)
        pieces.append((piece, offset))
        cursor = offset + 1
    return pieces
