"""Training health: does the run learn, and does it say so early, loudly and by name when it stops?

One concept, one place. Each monitor measures one thing and reports what it finds as a typed
:class:`~atft.health.events.HealthEvent` (:mod:`.events`, free of torch, the schema every reader shares):

* gradient flow per model component (:mod:`.gradients`);
* the collapse guard, per horizon (:mod:`.collapse`);
* the learning signal and dead inputs (:mod:`.signal`);
* :mod:`.monitors` wires them into the loop and acts on a finding (reset a head, stop the run, keep the
  weights of a non-finite step).

Every event goes once into the run's ``events.jsonl``, which the report, the Prometheus exporter and resume
all read (:mod:`atft.telemetry.events`).
"""
