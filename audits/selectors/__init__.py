"""Reads of the audits app (the console's dashboard, case trails, ledger state, exports), one module per area."""
