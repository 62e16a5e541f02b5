"""Task models: tfbert's own BERT-family encoder (or a transformers TF backbone) + Keras heads."""
