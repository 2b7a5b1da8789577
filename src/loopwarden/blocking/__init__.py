"""Blocking calls on a guarded loop thread: the blocking-call detector's rule tables.

The first detector over loopwarden's core, beside the stall watchdog
(:mod:`loopwarden.watchdog`) and thread affinity (:mod:`loopwarden.affinity`).
Each module is one family's table (``sleep``, ``filesystem``, ``network``,
``database``, ``sync``, ``process``, ``console``, ``qt``...): a ``RULES``
tuple of :class:`~loopwarden.Rule` data, with the predicates that decide
whether a call would block. The core's registry installs them, wrapped by
:func:`loopwarden.engine.make_wrapper`; :mod:`loopwarden.families` lists them.
:mod:`.socket_readiness` holds the network rules' readiness probes.

Importing this package imports none of its tables; the registry imports them
when it first installs the rules.
"""
