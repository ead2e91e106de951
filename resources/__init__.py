"""Data files shipped with the app: the model catalogue, presets, styles and lexicons."""
