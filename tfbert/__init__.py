"""tfbert: fine-tune BERT-family models with TensorFlow/Keras."""
