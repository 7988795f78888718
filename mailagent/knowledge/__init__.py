"""The knowledge base: Markdown articles in a folder (`articles`), synced into the database and
searched there (`search`)."""
