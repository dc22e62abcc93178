"""The `mlfn` command."""
