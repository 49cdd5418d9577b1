"""Benchmarks of LoRA Studio, measured as ratios side by side in one run; results in docs/BENCHMARKS.md."""
