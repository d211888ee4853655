"""Failure analysis: records, taxonomy, patterns, localisation, correlation, mistake notes.

An outer layer: it reads the journal and feeds notes back through the engine's `notes`
hook; nothing inside the engine imports it.
"""
