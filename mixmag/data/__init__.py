"""PBC data: scan, validate, split, download."""
