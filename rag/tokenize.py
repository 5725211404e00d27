"""BM25's tokens of a text, in any language: each run of text cut the way its script needs.

A text is split into runs by script, so the language is detected per chunk (and per query) and
even within one, and mixed text such as ``为什么不建议做RLHF？`` is cut right:

- Chinese (Han characters, in a text without Japanese kana): segmented into words by `jieba`
  (its own dictionary, in search mode, so that long words also yield their parts);
- other scripts written without spaces (Japanese kana and the Han characters among them, Thai,
  Lao, Khmer, Myanmar): overlapping character bigrams, the usual fallback when no segmenter is
  installed (a single character stays a unigram);
- everything else (Latin, Cyrillic, Greek, Hangul ...): bm25s's tokens, lower-cased words of two
  or more characters, with the stopwords of `language` removed and Snowball-stemmed, exactly as
  before this module existed (so the English tokens of a stored index stay valid).

Punctuation and single Chinese characters that are stopwords are dropped. `TOKENIZER_VERSION`
names this scheme; an index saved under another scheme must be rebuilt. This module knows
nothing about indexes, chunks or storage.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import bm25s

TOKENIZER_VERSION = "script-runs-1"
"""Stored with a BM25 index: an index written by another scheme (or none) is rebuilt from its chunks."""
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_OTHER_SPACELESS = "\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f"
_SPACELESS_RUN = re.compile(f"[{_HAN}{_KANA}{_OTHER_SPACELESS}]+")
_KANA_CHAR = re.compile(f"[{_KANA}]")
_HAN_CHAR = re.compile(f"[{_HAN}]")
_CHINESE_STOPWORDS = frozenset(
    "的 了 是 在 和 与 及 或 也 都 就 而 之 其 这 那 个 们 我 你 他 她 它 吗 呢 吧 啊 着 被 把 对 从 为 以 于 等 "
    "中 上 下 有 将 要 会 能 可 一 不 没 很 还 又 并 更 最 所 如 则 但 这个 那个 什么 一个 我们 你们 他们 "
    "可以 进行 以及 如果 因为 所以 然后 这些 那些 这样 通过 就是 还是 或者".split()
)


class Tokenizer:
    """Tokens for BM25; `language` is the Snowball language of the words of spaced scripts (None: no stemming)."""

    def __init__(self, language: str | None = "english"):
        self.language = language
        self._stemmer = None
        if language is not None:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(language)

    def __call__(self, texts: list[str]) -> list[list[str]]:
        """Each text's tokens, in order of appearance."""
        spaced = [_SPACELESS_RUN.sub(" ", text) for text in texts]
        words = bm25s.tokenize(
            spaced, stopwords=self.language, stemmer=self._stemmer, return_ids=False, show_progress=False
        )
        return [word_list + _spaceless_tokens(text) for word_list, text in zip(words, texts, strict=True)]


def _spaceless_tokens(text: str) -> list[str]:
    """Tokens of the runs of `text` in scripts written without spaces."""
    runs = _SPACELESS_RUN.findall(text)
    if not runs:
        return []
    chinese = not _KANA_CHAR.search(text)
    tokens: list[str] = []
    for run in runs:
        if chinese and all(_HAN_CHAR.match(c) for c in run):
            tokens += [word for word in _segment(run) if word not in _CHINESE_STOPWORDS]
        else:
            tokens += bigrams(run)
    return tokens


def bigrams(run: str) -> list[str]:
    """Overlapping character bigrams of `run`; the run itself if it is one character."""
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


@lru_cache(maxsize=1 << 14)
def _segment(run: str) -> tuple[str, ...]:
    """jieba's search-mode words of a run of Han characters (its dictionary loads on first use)."""
    return tuple(word for word in _jieba().cut_for_search(run) if word.strip())


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba
