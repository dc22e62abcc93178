"""Side-by-side benchmark of mlfn's runtime against the serving frameworks users compare it with.

Run `.venv/bin/python -m bench.compare` (full run) or `... -m bench.compare --smoke` (seconds, no installs).
"""
