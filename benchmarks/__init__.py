"""opkey benchmarks: ratios against primitive floors or peers, measured in one run."""
