"""The stages a message goes through, one module each: ingest, classify and thread, draft, decide,
deliver, sweep (and the helpdesk channel's own). A stage loads its row, moves it forward in one
transaction and says what follows; the actors in `worker/` call it."""
