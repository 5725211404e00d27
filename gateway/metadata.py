"""OpenAI's ``metadata``: at most 16 pairs, keys of at most 64 characters, values of at most 512.

One type for every stored object a client labels (fine-tuning jobs, responses, vector stores), so
that no list call can return megabytes of labels. This module knows nothing else.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

MAX_PAIRS, MAX_KEY, MAX_VALUE = 16, 64, 512


def _checked(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_PAIRS:
        raise ValueError(f"at most {MAX_PAIRS} key-value pairs")
    for key, item in value.items():
        if len(key) > MAX_KEY or len(item) > MAX_VALUE:
            raise ValueError(f"{key[:MAX_KEY]!r}: keys are at most {MAX_KEY} characters, values {MAX_VALUE}")
    return value


Metadata = Annotated[dict[str, str], AfterValidator(_checked)]
