"""Score the vocabulary only where there is a label, on CPU too.

TRL's fused LM head (``add_fused_lm_head``, installed by ``SFTTrainer``) projects hidden states
onto the vocabulary in chunks and never materialises the full logits. On Triton devices it
projects only the positions whose next token has a label; elsewhere it projects every position
(a fixed shape avoids recompilation on Neuron). Eager CPU execution never recompiles, so the
fixed shape buys nothing there, while the projection is most of the step: Gemma 3's vocabulary
has 262,144 rows against a 640-wide hidden state, and with assistant-only loss and padding a
batch often has labels on fewer than half its positions.

:func:`enable_compact_lm_head` makes TRL choose its compact branch on every device. The branch
itself is TRL's (same kernel, same outputs, same loss); only the choice changes. This module
knows nothing else about training.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def enable_compact_lm_head() -> bool:
    """Make TRL's fused LM head project only labelled positions; False if this TRL lacks the hook."""
    import trl.trainer.utils as trl_utils

    if not callable(getattr(trl_utils, "_use_triton", None)):
        log.warning("this TRL version has no compact-branch switch; scoring every position")
        return False
    # Read by `add_fused_lm_head`'s forward at call time to pick the compact branch. The kernel's
    # own Triton/torch choice lives in trl.kernels.chunked_logprob and is left untouched.
    trl_utils._use_triton = lambda device: True
    return True
