//! Node benchmarks (written below).

fn main() {}
