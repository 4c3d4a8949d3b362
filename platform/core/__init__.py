"""Kernel shared by every domain: settings, database and tenant scope, broker and outbox,
auth, sessions, problems, money, clock, mail and embedded services. It imports no domain;
the assembly (``oms``) puts the domains together."""
