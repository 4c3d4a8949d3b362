"""Inventory: locations, catalog, stock levels and their ledger, feeds, availability, and the
stock snapshot routing reads."""
