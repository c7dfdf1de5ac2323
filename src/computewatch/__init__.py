"""computewatch: compute monitoring for AI-training rules.

The reference implementation of the framework of Shavit, *What does it take
to catch a Chinchilla?* (arXiv:2303.11341): firmware-logged weight snapshots,
training transcripts verified by replay, a chip-owner directory, random chip
inspections, and the sampling mathematics that sizes them.

Each layer is a package with a small public API::

    >>> from computewatch.analysis import SamplingParams, plan_samples
    >>> plan = plan_samples(SamplingParams(flops=5.76e23, chips=1000))
    >>> plan.samples_per_year
    132
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
