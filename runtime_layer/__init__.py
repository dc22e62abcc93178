"""mlfn's data plane: everything that runs inside a model's image."""

__version__ = "0.1.0"
