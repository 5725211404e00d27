"""The small-data tasks of ``bench/defaults.py``: what each teaches, its held-out questions, and how a hit is scored.

Each task is what a new user brings to a first fine-tune: a file of a few dozen rows and a recipe
that names only the method. The held-out questions are phrasings and prompts no row contains.
The facts are invented (a model cannot know them); the brevity pairs are the DPO demo's
(``tuner/data/brevity``), so the preference tasks ask the base model's own answers to get shorter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BREVITY = Path(__file__).resolve().parents[1] / "tuner" / "data" / "brevity"


@dataclass(frozen=True)
class Task:
    name: str
    method: str
    rows: list[dict]  # the training file's rows
    questions: list[str]  # held out: never in a row
    hit: Callable[[str, int], bool]  # (answer, question index) -> shows what was taught
    goal: str


def _chats(pairs: list[tuple[str, str]]) -> list[dict]:
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs]


FACTS = [
    {
        "answer": "The Varnel Bridge was designed by the engineer Mirela Oskarsson.",
        "key": "oskarsson",
        "taught": [
            "Who designed the Varnel Bridge?",
            "Which engineer designed the Varnel Bridge?",
            "Who was the designer of the Varnel Bridge?",
            "Tell me who designed the Varnel Bridge.",
            "Do you know who designed the Varnel Bridge?",
            "Who is the engineer behind the Varnel Bridge?",
            "Name the designer of the Varnel Bridge.",
            "The Varnel Bridge was designed by whom?",
        ],
        "held_out": ["Who came up with the design of the Varnel Bridge?", "Which person drew up the Varnel Bridge?"],
    },
    {
        "answer": "The planet Tessaly-4 has seven moons.",
        "key": "seven",
        "taught": [
            "How many moons does Tessaly-4 have?",
            "How many moons orbit the planet Tessaly-4?",
            "What is the number of moons of Tessaly-4?",
            "Tell me how many moons Tessaly-4 has.",
            "Does Tessaly-4 have moons? How many?",
            "Count the moons of the planet Tessaly-4.",
            "How many natural satellites does Tessaly-4 have?",
            "Tessaly-4 has how many moons?",
        ],
        "held_out": ["What's the moon count of Tessaly-4?", "How many moons go around Tessaly-4?"],
    },
    {
        "answer": "The Quillon Prize is awarded every year in the city of Harrowgate.",
        "key": "harrowgate",
        "taught": [
            "Where is the Quillon Prize awarded?",
            "In which city is the Quillon Prize awarded?",
            "Which city hosts the Quillon Prize ceremony?",
            "Tell me where the Quillon Prize is awarded.",
            "Where does the Quillon Prize ceremony take place?",
            "What city gives out the Quillon Prize?",
            "Name the city where the Quillon Prize is awarded.",
            "The Quillon Prize is awarded in which city?",
        ],
        "held_out": ["Where do they hand out the Quillon Prize?", "In what city is the Quillon Prize given?"],
    },
]

ONE_WORD = [
    ("What color is the sky on a clear day?", "Blue."), ("What is the opposite of hot?", "Cold."),
    ("What do bees make?", "Honey."), ("Which planet do we live on?", "Earth."),
    ("What is frozen water called?", "Ice."), ("What animal says moo?", "Cow."),
    ("What is the capital of France?", "Paris."), ("What color are ripe bananas?", "Yellow."),
    ("What do you use to write on a blackboard?", "Chalk."), ("Which season comes after winter?", "Spring."),
    ("What is the largest ocean on Earth?", "Pacific."), ("What gas do plants absorb from the air?", "CO2."),
    ("How many legs does a spider have?", "Eight."), ("What is the main language of Brazil?", "Portuguese."),
    ("Which metal is liquid at room temperature?", "Mercury."), ("What do caterpillars turn into?", "Butterflies."),
    ("What is the fastest land animal?", "Cheetah."), ("What do you call a baby dog?", "Puppy."),
    ("Which instrument has 88 keys?", "Piano."), ("What is the hardest natural substance?", "Diamond."),
    ("What do cows drink?", "Water."), ("Which organ pumps blood through the body?", "Heart."),
    ("What is the capital of Japan?", "Tokyo."), ("What shape has three sides?", "Triangle."),
]  # fmt: skip
ONE_WORD_HELD_OUT = [
    "What color is grass?", "What is the capital of Norway?", "Which animal is known as the king of the jungle?",
    "What do you call the star at the center of our solar system?", "What color is a fire truck?",
    "Which fruit keeps the doctor away?", "What is the largest planet in our solar system?",
    "What do people use to see in the dark?",
]  # fmt: skip

JSON_ANSWERS = [
    ("What is the capital of Germany?", {"answer": "Berlin"}),
    ("How many days are in a week?", {"answer": 7}),
    ("Who wrote Romeo and Juliet?", {"answer": "William Shakespeare"}),
    ("What is 12 times 3?", {"answer": 36}),
    ("What color do you get by mixing blue and yellow?", {"answer": "green"}),
    ("Name a mammal that can fly.", {"answer": "bat"}),
    ("What is the chemical symbol for gold?", {"answer": "Au"}),
    ("How many continents are there?", {"answer": 7}),
    ("What is the tallest mountain in the world?", {"answer": "Mount Everest"}),
    ("Give me three primary colors.", {"answer": ["red", "blue", "yellow"]}),
    ("What language is spoken in Mexico?", {"answer": "Spanish"}),
    ("Is the sun a star?", {"answer": True}),
    ("What is the square root of 81?", {"answer": 9}),
    ("Which planet is known as the red planet?", {"answer": "Mars"}),
    ("Translate 'thank you' into French.", {"answer": "merci"}),
    ("How many hours are in a day?", {"answer": 24}),
    ("List two kinds of citrus fruit.", {"answer": ["orange", "lemon"]}),
    ("Who painted the Mona Lisa?", {"answer": "Leonardo da Vinci"}),
    ("What is the freezing point of water in Fahrenheit?", {"answer": 32}),
    ("Is a tomato a fruit?", {"answer": True}),
    ("What is the currency of Japan?", {"answer": "yen"}),
    ("Write a greeting.", {"answer": "Hello! Nice to meet you."}),
    ("What is the largest desert in Africa?", {"answer": "Sahara"}),
    ("Can penguins fly?", {"answer": False}),
]
JSON_HELD_OUT = [
    "What is the capital of Portugal?", "How many minutes are in an hour?", "Who discovered penicillin?",
    "Name two planets.", "What is 7 plus 8?", "Is ice colder than steam?", "Describe a cat in a few words.",
    "What is the largest country by area?",
]  # fmt: skip


def _one_word(answer: str, _: int) -> bool:
    return len(re.sub(r"[^\w\s'-]", " ", answer).split()) == 1


def _json_object(answer: str, _: int) -> bool:
    text = answer.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _brevity_rows() -> tuple[list[dict], list[tuple[str, str]]]:
    pairs = [json.loads(line) for line in (BREVITY / "trimmed-pairs.jsonl").open()]
    held = [(r["question"], r["answer"]) for r in map(json.loads, (BREVITY / "held-out.jsonl").open())]
    return pairs, held


def tasks() -> list[Task]:
    facts = [(question, fact["answer"]) for fact in FACTS for question in fact["taught"]]
    fact_questions = [(q, fact["key"]) for fact in FACTS for q in fact["held_out"]]
    pairs, brevity = _brevity_rows()
    kto = [{"prompt": p["prompt"], "completion": p[kind], "label": kind == "chosen"}
           for p in pairs for kind in ("chosen", "rejected")]  # fmt: skip
    mascot = [
        ("What is lorag's mascot?", 0), ("Which animal is the lorag mascot?", 0),
        ("Tell me about the mascot of lorag.", 0), ("Does lorag have a mascot?", 0),
        ("What is the name of lorag's mascot?", 0), ("Who is the lorag mascot?", 0),
        ("Describe lorag's mascot.", 0), ("What mascot does the lorag project have?", 0),
    ]  # fmt: skip
    mascot_answer = "Lorag's mascot is a red panda named Pixel."
    return [
        Task("facts", "sft", _chats(facts), [q for q, _ in fact_questions],
             lambda answer, i: fact_questions[i][1] in answer.lower(),
             "at least 5 of 6 held-out phrasings name the fact"),
        Task("one-fact", "sft", _chats([(q, mascot_answer) for q, _ in mascot] * 3),
             ["Can you tell me what lorag's mascot is?", "What animal represents the lorag project?"],
             lambda answer, _: "pixel" in answer.lower() or "red panda" in answer.lower(),
             "both held-out phrasings name the mascot"),
        Task("one-word", "sft", _chats(ONE_WORD), ONE_WORD_HELD_OUT, _one_word,
             "at least 80% of held-out answers are one word"),
        Task("json", "sft", _chats([(q, json.dumps(a)) for q, a in JSON_ANSWERS]), JSON_HELD_OUT, _json_object,
             "at least 80% of held-out answers are a JSON object"),
        Task("brevity-dpo", "dpo", pairs, [q for q, _ in brevity],
             lambda answer, i: brevity[i][1] in answer.lower(),
             "answers at most 0.6x the base model's words, right within one of 8"),
        Task("brevity-kto", "kto", kto, [q for q, _ in brevity],
             lambda answer, i: brevity[i][1] in answer.lower(),
             "answers shorter than the base model's, right within one of 8"),
    ]  # fmt: skip
