"""Where a run's records go: the typed event stream ``events.jsonl`` (:mod:`.events`) and the console and
TensorBoard sinks beside it (:mod:`.sinks`)."""
