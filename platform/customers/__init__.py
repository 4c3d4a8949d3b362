"""Customers: one record per email and company, found or created as orders come in."""
