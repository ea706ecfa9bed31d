"""Walk-forward validation: one training run per fold and seed, pooled into one out-of-sample report."""
