"""CLI sub-commands, one module per command group; `streams.cli` assembles them."""
