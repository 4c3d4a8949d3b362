"""The assembly: the app factory, the `oms` command line, the worker entry point, and the
registry of every domain's models and actors. The only package that imports every domain."""
