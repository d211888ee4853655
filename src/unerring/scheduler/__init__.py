"""Driving a run's items: many steps in flight, one vote path, events out; the task
memory tree of a graph."""
