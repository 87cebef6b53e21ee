"""Well-known batch-norm tutorials, replicated on d2lai: one runnable module a tutorial."""
