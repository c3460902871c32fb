"""Writes of the audits app, one module per area.

Each service is one transaction with history rows (actor and reason) and, for governed actions, a ledger event
appended as the transaction's last write. Work that may be long (verifying the chain, writing an export, rebuilding
the dashboard) runs in a Celery task enqueued after commit.
"""
