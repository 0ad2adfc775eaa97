"""The one code sandbox: a pool of isolated workers (pool), isolation levels (isolation), the worker script (worker),
per-task time limits calibrated on reference solutions (time_limits)."""
