"""OpenAI's ``metadata``: at most 16 pairs, keys of at most 64 characters, values of at most 512.

One type for every stored object a client labels (fine-tuning jobs, responses, vector stores), so
that no list call can return megabytes of labels. This module knows nothing else.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

Metadata = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64)], Annotated[str, StringConstraints(max_length=512)]],
    Field(max_length=16, description="At most 16 pairs; keys up to 64 characters, values up to 512."),
]
