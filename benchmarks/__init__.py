"""Benchmarks: measurements of zoomreel on the machine they run on (not tests)."""
