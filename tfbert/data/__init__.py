"""Loading, validating, tokenizing and batching data."""
