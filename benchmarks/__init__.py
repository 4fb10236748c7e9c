"""Benchmarks and simulation studies (``make bench``); never part of the timed unit tests."""
