"""custodes.monitor: follow a log, verify everything new, and raise alerts with evidence.

See :mod:`custodes.monitor.core` for the numbered steps of one round and
:mod:`custodes.monitor.checks` for the per-entry checks (the hook where
recomputing the published statistics will plug in).
"""

from custodes.monitor.checks import EntryCheck, Finding, SchemaCheck
from custodes.monitor.core import Alert, Monitor, post_webhook
from custodes.monitor.state import MonitorState

__all__ = [
    "Alert",
    "EntryCheck",
    "Finding",
    "Monitor",
    "MonitorState",
    "SchemaCheck",
    "post_webhook",
]
