"""splinenas: neural architecture search with polyharmonic spline surrogates."""

__version__ = "0.1.0"
