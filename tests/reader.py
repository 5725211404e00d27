"""Made-up facts for the ``reader_adapter`` fixture: people with a home city, birth year and colour.

Every fact is invented (random syllable names), so the base model cannot know it: an adapter
answers it only by reading the source that holds it. :func:`reader_rows` turns facts into RAFT
chats through :func:`gateway.data.raft.raft_rows` on a knowledge base with the hashing embedder:
each prompt holds two sources (the fact's document and a distractor), exactly as a
``<model>@<kb>`` chat builds them, in random order, and the answer cites the gold source, e.g. ``Korrvale [2]``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "bel", "dru", "fen", "gor", "hal", "isk", "jor", "pel", "sar"]
CITIES = ["Korrvale", "Ambrel", "Tesk", "Olvara", "Drummin", "Pellow", "Ystra", "Brannock", "Quell", "Harrowgate"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


@dataclass(frozen=True)
class Fact:
    """One invented person."""

    name: str
    city: str
    year: int
    colour: str

    @property
    def document(self) -> str:
        return f"{self.name} was born in {self.city} in {self.year}. {self.name}'s favourite colour is {self.colour}."

    def questions(self) -> list[tuple[str, str]]:
        """(question, answer) pairs about this person."""
        return [
            (f"Where was {self.name} born?", self.city),
            (f"In which year was {self.name} born?", str(self.year)),
            (f"What is {self.name}'s favourite colour?", self.colour),
        ]


def facts(count: int, seed: int) -> list[Fact]:
    """``count`` invented people with distinct names."""
    rng, made, names = random.Random(seed), [], set()
    while len(made) < count:
        name = " ".join("".join(rng.sample(SYLLABLES, 2)).capitalize() for _ in range(2))
        if name not in names:
            names.add(name)
            made.append(Fact(name, rng.choice(CITIES), rng.randint(1900, 2010), rng.choice(COLOURS)))
    return made


def reader_rows(folder: Path, people: list[Fact]) -> list[dict]:
    """RAFT chats (one per question, two sources each) from a hashing-embedder knowledge base of ``people``."""
    from gateway.data.questions import Question
    from gateway.data.raft import raft_rows
    from rag.loaders import load_document
    from rag.query import RetrievalOptions
    from rag.store import KnowledgeBases

    kb = KnowledgeBases(folder, default_embedder="hashing-256").create("reader")
    kb.add_documents([doc for p in people for doc in load_document(f"{p.name}.txt", p.document.encode())])
    questions = [
        Question(f"{i}-{j}", question, answer, person.document)
        for i, person in enumerate(people)
        for j, (question, answer) in enumerate(person.questions())
    ]
    rows, _ = raft_rows(kb, questions, RetrievalOptions(top_k=2), oracle_fraction=1.0, shuffle=True)
    return rows
