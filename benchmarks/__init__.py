"""Benchmarks: kernels and whole-engine training, CPU and GPU."""
