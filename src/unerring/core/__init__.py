"""The innermost package: samples, flags, events, totals, the seeded hash. Imports only
`unerring.errors` and `unerring.defaults`, which import nothing of unerring's."""
