"""pytest plugin for loopwarden (``pytest --block-detect``); inert unless switched on."""
