"""Route handlers, one module per collection."""
