"""Which augmented-prompt layout lets the base model answer from its sources best?

Builds a knowledge base of the Wiki-Newpages bio test documents (the compare demo's `bio`),
retrieves the top chunks for a seeded sample of the test questions (the demo's 40), and asks the
prepared base model greedily under several layouts of the same sources and instruction:
- `user` (lorag's): sources, then the instruction, then the question, all in the user turn;
- `system`: instruction and sources in a system turn, the question alone in the user turn;
- `question-first`: the user turn starts with the question, then the sources and instruction;
- `closed-book`: the question alone, no sources (the floor).

Prints token F1 against the reference, the share of answers that cite a source ([n]), the share
that give an answer before anything else (the first sentence alone scores F1 > 0), and the mean
prompt tokens. Results: docs/results/rag_prompt.md.

    python bench/rag_prompt.py [--model smollm2-135m-instruct] [--limit 40] [--top-k 4]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.compare.scoring import token_f1  # noqa: E402
from gateway.data.questions import load_questions, sample  # noqa: E402
from gateway.settings import get_settings  # noqa: E402
from rag.augment import DEFAULT_INSTRUCTION, augment, sources_block  # noqa: E402
from rag.retriever import retrieve  # noqa: E402
from rag.store import KnowledgeBases  # noqa: E402
from serve.models import prepare  # noqa: E402

QA_TEST = "../shared/data/qa/wiki-newpages-2023-10-bio/127_num_qa_663bio_pit_test.json"
_CITATION = re.compile(r"\[\d+\]")


OLD_INSTRUCTION = (
    "Answer the question using the numbered sources above, and cite the sources you use by number, "
    "like [1]. If they do not contain the answer, say so."
)


EXAMPLE_INSTRUCTION = (
    "Answer the user's question from the numbered sources below, in one short sentence that ends with the "
    'number of the source you used, for example: "She was born in Leeds [2]." If the sources do not contain '
    "the answer, say so."
)


def layouts(question: str, hits) -> dict[str, list[dict]]:
    user = [{"role": "user", "content": question}]
    block = sources_block(hits)
    return {
        "user-old": augment(user, hits, instruction=OLD_INSTRUCTION)[0],
        "user": augment(user, hits)[0],
        "system": [{"role": "system", "content": f"{DEFAULT_INSTRUCTION}\n\n{block}"}, *user],
        "system-after": [{"role": "system", "content": f"{block}\n\n{DEFAULT_INSTRUCTION}"}, *user],
        "system-example": [{"role": "system", "content": f"{EXAMPLE_INSTRUCTION}\n\n{block}"}, *user],
        "system-cue": [
            {"role": "system", "content": f"{DEFAULT_INSTRUCTION}\n\n{block}"},
            {
                "role": "user",
                "content": f"{question}\n\nAnswer in one sentence, then cite the source number, like [1].",
            },
        ],
        "question-first": [{"role": "user", "content": f"Question: {question}\n\n{block}\n\n{DEFAULT_INSTRUCTION}"}],
        "closed-book": user,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=get_settings().base_model)
    parser.add_argument("--questions", default=QA_TEST)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--layouts", help="comma-separated layouts to run (default: all)")
    parser.add_argument("--show", type=int, default=0, help="print this many answers of each layout")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gateway.data.documents import export_documents
    from tuner.generation import greedy_answers

    questions = sample(load_questions(args.questions), args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        export_documents(args.questions, Path(tmp) / "docs")
        kb = KnowledgeBases(Path(tmp) / "kb").create("bio")
        for path in sorted((Path(tmp) / "docs").iterdir()):
            kb.ingest(path.name, path.read_bytes())
        prompts = {q.id: layouts(q.question, retrieve(kb, q.question, top_k=args.top_k)) for q in questions}

    model_dir = prepare(args.model, get_settings().cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    print(f"{args.model}, {len(questions)} questions, top_k {args.top_k}, greedy, max_tokens {args.max_tokens}\n")
    print(f"{'layout':<16} {'token F1':>9} {'cites':>6} {'answer first':>13} {'prompt tokens':>14}")
    for layout in args.layouts.split(",") if args.layouts else next(iter(prompts.values())):
        chats = [prompts[q.id][layout] for q in questions]
        answers = greedy_answers(model, tokenizer, chats, args.max_tokens, desc=layout)
        f1 = [token_f1(a.text, q.answer) for a, q in zip(answers, questions, strict=True)]
        cites = [bool(_CITATION.search(a.text)) for a in answers]
        first = [
            token_f1(re.split(r"(?<=[.!?])\s", a.text)[0], q.answer) > 0
            for a, q in zip(answers, questions, strict=True)
        ]
        texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
        tokens = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        for answer, q in list(zip(answers, questions, strict=True))[: args.show]:
            print(f"  {q.question} -> {answer.text!r} (reference: {q.answer})")
        print(
            f"{layout:<16} {statistics.mean(f1):>9.3f} {statistics.mean(cites):>6.2f} {statistics.mean(first):>13.2f}"
            f" {statistics.mean(tokens):>14.1f}"
        )


if __name__ == "__main__":
    main()
