"""`mixmag serve`: a local web page to look at, check and correct predictions (docs/serve.md)."""
