"""Training photos: the curated landscape list, fetching it from Debian packages, and the one
resize-to-height rule that the fetcher and the training loader share. Needs no torch."""
