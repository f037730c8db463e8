"""Performance measurements (they print numbers, they do not pass or fail). Each module runs
as ``python -m benchmarks.<module>``; :mod:`benchmarks.targets` lists ``iabmeta bench``'s."""
