"""Keras task models on `transformers` TF backbones."""
