"""Evidence reviews from published (aggregate) trial results: review.yaml in, SoF and claims out."""
