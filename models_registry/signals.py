"""Signals other apps listen to, so the registry never imports them (the audits app audits a version when its
production is requested)."""

from django.dispatch import Signal

# Sent inside the request's transaction, after it is saved and in the ledger, with ``promotion_request``.
promotion_requested = Signal()
