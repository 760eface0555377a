"""rpd's benchmarks: `python -m benchmarks.NAME` runs one; each prints its figures."""
