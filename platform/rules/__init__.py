"""Condition language, routing and promotion rule sets, versions, evaluator and builder (to come)."""
