"""Science core: pure functions on NumPy arrays. Imports neither Qt nor napari."""
