"""`python -m bench`: the project's benchmarks (throughput, memory, calibrate, quality,
peers). Each sub-command prints progress to stderr and a Markdown table to stdout; `--quick`
runs it at a tiny size. Figures are recorded in BENCHMARKS.md, never asserted by timed tests.
"""
