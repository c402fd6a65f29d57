"""The name transformers gives the KV cache, in model keywords and in model outputs.

transformers 5.24 renamed `past_key_values=` to `cache=` (the old name warns, and goes in 5.40);
earlier 5.x releases know only `past_key_values`. Every call site takes the name from here, so
one place follows the library.
"""

from __future__ import annotations

import dataclasses

from transformers.modeling_outputs import BaseModelOutputWithPast

CACHE = "cache" if "cache" in {f.name for f in dataclasses.fields(BaseModelOutputWithPast)} else "past_key_values"


def cache_of(output):
    """The KV cache a model forward returned."""
    return getattr(output, CACHE)
