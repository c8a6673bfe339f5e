"""Persistence behind one repository interface (``base``); SQLite is the default backend."""
