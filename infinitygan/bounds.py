"""The seed range every part of the project accepts, in a module that imports nothing.

The tile server's address parsing and the HTTP prefetch client validate seeds without loading
torch, so the bound lives here rather than beside the latent hash that relies on it.
"""

from __future__ import annotations

MAX_SEED = 2**63  # seeds are 0 <= seed < 2**63
