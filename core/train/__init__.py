"""Training: ``job`` (a run's thread, state, stop and run folder), ``trainer`` (what runs inside trainer.train())."""
