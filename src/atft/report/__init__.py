"""The report of a run: reading its directory (:mod:`.read`), judging it (:mod:`.judge`, :mod:`.health`),
building and writing it (:mod:`.build`), rendering it (:mod:`.markdown`, :mod:`.plots`), comparing two runs
(:mod:`.compare`). What each section and objective measures is in :mod:`atft.report.build`."""
