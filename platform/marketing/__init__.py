"""Promotions and coupons, segments and campaigns (to come). The customer record itself lives in
``customers``."""
