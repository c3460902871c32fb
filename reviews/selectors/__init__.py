"""Reads of the reviews app, already shaped (select_related/only) for their callers."""
