"""custodes.reports: transparency reports computed from the public log, and their audit.

* :mod:`.replay`: :class:`~.replay.PublicState`, the public log replayed entry by
  entry (standard library, :mod:`custodes.records` and :mod:`custodes.fleet.model`
  only), shared by the dashboard, the gateway and the reports.
* :mod:`.figures`: every published figure, each defined in the module docstring.
* :mod:`.render`: the report as JSON (the audited form), HTML and PDF.
* :mod:`.audit`: reading the log from an instance, tiles or a URL, checking it
  against a signed checkpoint, and recomputing a report's figures.

Nothing is imported here, so that importing :mod:`.replay` stays light.
"""
