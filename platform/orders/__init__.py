"""Orders: capture on every channel, routing of orders, lifecycle, fulfilment, cancellation,
payments, pickup expiry, closing, and the replay of past orders under other routing rules."""
