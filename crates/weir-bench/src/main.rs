//! `weir-bench`: benchmarks that report ratios against baselines measured in the same run.
fn main() {}
