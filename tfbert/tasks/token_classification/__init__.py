"""Token classification (NER): ``config`` (TF-free, registered by type), ``task`` (its `Task`), ``serving``."""
