"""attrackt in napari: a reader (CTC folders, geff stores), a geff writer for tracks layers and
the proof-reading widget (manifest: ``napari.yaml``).

The proof-reading logic lives in :mod:`attrackt.napari.session` (no Qt, no napari); the widget
only turns clicks into its calls. Importing this package imports neither napari nor Qt.
"""
