"""The back-pain evidence pipeline.

Stages (each a module with a pure core and a thin entry point): ``simulate`` writes the
synthetic ETMI reference cohort as a clinic export, ``ingest`` turns exports into canonical
validated tables, ``analyse`` fits the declared comparisons, ``summarise`` writes citable
plain-language evidence summaries.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("backpain-pipeline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
