"""Classic reference recommenders behind the same Backend protocol as the generative ones."""
