"""Souq's benchmarks: each module is one command (`python -m bench.webhooks`, ...), starts what
it needs (PostgreSQL database, a standalone sandbox, `souq serve`), loads it from separate
processes on loopback for a bounded time, verifies the final state and prints its figures with
a baseline measured in the same run. See BENCHMARKS.md."""
