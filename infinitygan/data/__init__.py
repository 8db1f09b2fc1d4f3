"""Training photos: the curated landscape list, fetching it from Debian packages, the one
resize-to-height rule that the fetcher and the loader share, and the patch sampler that both
training and evaluation draw real patches from. Only `patches` needs torch."""
