"""Failure analysis: records, taxonomy, patterns, localisation, correlation, mistake notes.

An outer layer: it reads the journal (through `Store`'s analysis queries; no SQL of its
own), over every item of a batch, and feeds notes back through the scheduler's `notes`
hook; nothing inside the scheduler imports it.
"""
