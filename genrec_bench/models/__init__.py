"""The generative models, one folder each with a model card (README.md), and their registry.

A model folder imports the shared parts (`genrec_bench.nn`, `decoding`, `items`) and never another
model's folder; `registry` finds models by name.
"""
