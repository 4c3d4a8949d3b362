"""The console's home: the live operations dashboard by role, and the getting-started checklist."""
