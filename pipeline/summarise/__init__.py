"""Summarise: figures, plain-language claims and reports built from the processed estimates."""
