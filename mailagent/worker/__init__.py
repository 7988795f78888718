"""Processes: the broker, the actors (thin: name a row, call a stage), the agent runs' event loop,
the in-process runner, the clock, the IDLE watchers and the LMTP listener."""
