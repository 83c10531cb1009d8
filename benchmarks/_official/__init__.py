"""The official NAFNet / NAFNetLocal code (MIT), vendored as a reference for benchmarks only."""
