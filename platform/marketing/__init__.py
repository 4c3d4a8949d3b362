"""Customer 360, segments, campaigns and coupon codes (to come)."""
