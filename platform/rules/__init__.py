"""Rules: the condition language, its field registry, the pure routing evaluator, rule sets
with versions scheduled by date, and the visual builder. Imports no domain but tenants: what
gathers data for an evaluation lives with the data (see ``rules.lab``)."""
