"""faas_sdk.perf: measure the platform honestly (executor matrix, load tester, regression
baselines, profiling helpers). See docs/benchmarks.md for what every metric means."""
