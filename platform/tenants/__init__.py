"""Signup, tenants, users, memberships and roles, invitations, API keys and the audit log."""
