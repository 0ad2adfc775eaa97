"""Benchmark evaluation: the one generate -> score path (generate, scoring, evaluate), the eval stages, reports;
benchmarks/ and grader/ below. Imports common only."""
