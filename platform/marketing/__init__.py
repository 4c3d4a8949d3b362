"""Promotions and coupons, segments and campaigns. Promotions are a rule set of ``rules``
(evaluated by ``rules.promotions``); order capture reaches them through ``orders.promotion_hook``,
which ``marketing.pricing`` fills in. The customer record itself lives in ``customers``."""
