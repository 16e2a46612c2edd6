"""Usage ledger, token quotas with leases, rate limits, usage reports."""
