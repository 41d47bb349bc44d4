"""custodes.mirror: a verified, cosigned copy of a log (C2SP tlog-mirror).

A mirror follows an origin log over tlog-tiles, checks every entry bundle
and hash tile it copies against the entries and the log's signed root (so
each new checkpoint is proven consistent with the last one mirrored), writes
the copy in the tlog-tiles layout, and serves it read-only with the log's
checkpoint cosigned by the mirror's own key: a cosignature that says the
mirror holds all of it.  When the origin is cut off, verifiers read the
mirror instead (``custodes verify --source http://mirror``).

:mod:`.follow` is the copying and checking, with no HTTP; :mod:`.server` the
background follower and the server; :mod:`.push` the spec's write API
(``add-checkpoint``, ``add-entries``), by which anyone holding the log keeps
the mirror growing while the origin is down; :mod:`.client` the client of
that API (``custodes mirror push``).
"""

from custodes.mirror.follow import Mirror, Round, Source, changed_tiles, origin_hash

__all__ = ["Mirror", "Round", "Source", "changed_tiles", "origin_hash"]
