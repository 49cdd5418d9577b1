"""Inference: ``adapters`` (check and apply an adapter, load the base as trained), ``generate`` (one model, one
prompt at a time), ``modelset`` (base | adapter | merged of a run in memory, and the cache the GUI keeps),
``batch`` (a run's rows and files of rows → prompts and CSVs)."""
