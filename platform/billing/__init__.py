"""Plans, usage metering, invoices, Stripe sync and dunning (to come)."""
