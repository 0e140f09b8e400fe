"""Speed benchmarks, each runnable as `python -m experiments.benchmarks.<name>`."""
