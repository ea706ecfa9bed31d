"""Evaluation metrics (``finance``: IC, RankIC, ICIR, long-short Sharpe) and the sinks that record them."""
