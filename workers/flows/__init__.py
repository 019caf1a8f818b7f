"""One module per flow: load, call mapping/, call Virtuous through the gate, and persist
through the store."""
