"""Reading and writing: CTC folders, geff graphs, napari layers, crash-safe files."""
