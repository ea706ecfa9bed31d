"""Where a run's files live: the run directory atft creates and owns (:mod:`.directory`) and atomic writes
of every file in it (:mod:`.files`)."""
