"""The click command line: a thin skin over the broker, the client and inspect."""
