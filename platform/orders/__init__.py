"""Catalog, locations, inventory, customers, orders, fulfilments and returns (to come)."""
