"""custodes: an oversight ledger for city camera networks.

Importing this package loads nothing heavy: the verification library
(``custodes.tlog``) must stay usable with the standard library and
``cryptography`` alone.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
