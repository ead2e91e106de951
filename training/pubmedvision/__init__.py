"""PubMedVision-style data construction: filter, deduplicate and reformat image-caption pairs."""
