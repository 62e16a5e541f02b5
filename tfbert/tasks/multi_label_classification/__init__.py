"""Multi-label classification: ``config`` (TF-free, registered by type), ``task`` (its `Task`), ``serving``."""
