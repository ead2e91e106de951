"""The model store: installed model folders, their manifest, file checks, the catalogue and downloads.

The manifest (`manifest.py`) is the contract between the converter, which writes it, and the store and the
engine, which read it.
"""
