"""The console's home: the getting-started checklist (and, to come, the operations dashboard)."""
