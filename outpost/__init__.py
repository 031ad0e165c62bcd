"""The ``outpost`` command: one entry point for the backend, the app, the client and tools."""
