"""Kernel shared by every domain: settings, database and tenant scope, broker and outbox,
app factory, auth, mail, embedded services and the command line."""
