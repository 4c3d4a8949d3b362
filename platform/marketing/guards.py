"""Who may do what in marketing: marketers and merchandisers run promotions, coupons, segments
and campaigns; read-only members see them; customer service sees a customer's marketing side."""

from __future__ import annotations

from core.auth import requires

MARKETERS = ("owner", "admin", "marketing", "merchandiser")

manage_marketing = requires(*MARKETERS)
see_marketing = requires(*MARKETERS, "read_only")
see_customer_marketing = requires(*MARKETERS, "read_only", "customer_service")
