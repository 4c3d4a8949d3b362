"""Who may do what with the rules: merchandisers edit and publish them; simulating and replaying
read the company's recent orders, so they are for those who see them all."""

from __future__ import annotations

from core.auth import MERCHANDISERS, requires

manage_rules = requires(*MERCHANDISERS)
try_rules = requires(*MERCHANDISERS, "read_only")
