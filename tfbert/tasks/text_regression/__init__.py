"""Text regression (STS-B): ``config`` (TF-free, registered by type), ``task`` (its `Task`), ``serving``,
``data`` (the score column) and ``report`` (its report figure)."""
