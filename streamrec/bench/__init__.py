"""Benchmarks: ``streamrec bench``. Medians of repeated runs, competitors measured side by side
in the same run, never timed tests."""
