"""rpd's benchmarks: `python -m benchmarks` runs the five of issue 7 and writes results.json;
`python -m benchmarks.NAME` runs one. benchmarks/README.md has the figures and what bounds them."""
