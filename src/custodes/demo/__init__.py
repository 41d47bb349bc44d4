"""The demo city behind ``make demo``: a synthetic city and a simulated week, built in-process.

:func:`custodes.demo.build.build_city` writes a fresh data directory through the
library, with a simulated clock whose week ends "now":

1. geography (:mod:`custodes.demo.city`): districts with population, places by
   category (worship, schools, official residences, protest sites, a theatre),
   and cameras placed unequally among them;
2. the week (:mod:`custodes.demo.build`): heartbeats per interval, hourly
   segment digests, random outages, a correlated outage near the theatre one
   night that is declared late;
3. people (:mod:`custodes.demo.people`): users for every role, footage
   requests, approvals, denials and releases through the access gateway, and
   one insider pattern that the anomaly rules flag.

:mod:`custodes.demo.feed` keeps the served city heard from afterwards, so its
cameras do not all fall silent while the demo runs.  Everything is synthetic:
no place, person or case in it is real.
"""

from __future__ import annotations
