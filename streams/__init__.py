"""The Faust side: app, topics, tables, agents, web views, CLI and the in-memory transport."""
