"""Comparative analysis: declared comparisons fitted with statsmodels/scipy, tidy estimates out.

Every ``fit_*`` function takes a data frame with one row per participant (the analysis
frame) plus column names by role, and returns a tidy data frame with the columns of
:data:`pipeline.analysis.tidy.ESTIMATE_COLUMNS` (one row per estimate).
"""
