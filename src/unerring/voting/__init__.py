"""Deciding one step from its samples: first-to-ahead-by-k, the adaptive rule, and the
voting settings. Pure: no I/O, no asyncio."""
