"""Benchmarks of the pipeline's stages on one embedded broker: `python -m bench.run --help`."""
