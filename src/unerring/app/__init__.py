"""The composition root: a run's options, the runner that builds the parts and drives
them, resume, signals and the result."""
