"""Adapters between napari's plugin contributions and the core (reader, writer, samples)."""
