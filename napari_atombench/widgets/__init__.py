"""Dock widgets: thin layers over core and models; long work runs in thread workers."""
