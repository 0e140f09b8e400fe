"""Speed benchmarks, each runnable as `python -m experiments.benchmarks.<name>`: each prints its figures as
JSON and writes them, stamped with date, commit and command, to `experiments/results/<name>.json`
(`experiments.results`, which also renders them into docs/results.md)."""
