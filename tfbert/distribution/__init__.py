"""Strategy-specific pieces behind `tfbert.distribute` (the one place a strategy is chosen).

- `cluster`: multi-worker bookkeeping (TF_CONFIG, chief, per-worker scratch output, final barrier);
- `tpu`: finding and initialising a Cloud TPU;
- `ipu`: Graphcore's SDK (imported lazily), IPUConfig, gradient accumulation and pipelining options;
- `pipeline`: the BERT task model unrolled into embeddings / encoder layers / head for IPU pipelining.
"""
