"""Reliability and security tests (issue #9): fuzzed bad input, faults, concurrency, secrets, tamper evidence."""
