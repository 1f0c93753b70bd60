"""Parts the neural models share: the backend plumbing, item-sequence Transformers, the semantic-ID
encoder-decoder. Models compose these; no model inherits from another."""
