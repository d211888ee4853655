"""Planning before spending: reliability maths, k for a target, the adaptive rule's
predictions, prices, and calibrating a model's error rate."""
