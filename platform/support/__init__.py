"""Customer service: search as you type, the customer's whole history, returns (RMA) and their
policy, goodwill refunds within each role's limits, exchanges and notes. It reaches orders,
inventory and customers through their service functions; its own tables are in ``models``."""
