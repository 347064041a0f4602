"""The action runtime: execution context, executors (sandbox, host, forensic), the forensic guard,
error classification, backoff, claims and leases, and the outbox relay / lease sweeper."""
