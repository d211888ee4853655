"""The innermost layer: samples, flags, events, totals, the seeded hash. Imports nothing
of unerring's."""
