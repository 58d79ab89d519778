"""The db layer: the only place with SQL text. One module per concern, named statements beside
their typed wrappers."""
