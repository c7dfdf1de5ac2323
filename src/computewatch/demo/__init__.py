"""The end-to-end demo of an audit (`computewatch demo`), on the embedded defaults.

Example::

    >>> from computewatch.demo import run_demo
    >>> result = run_demo(Path("out/demo"), scale="tiny")  # doctest: +SKIP
    >>> result.compliant  # doctest: +SKIP
    {'lab-a': True, 'lab-b': False}
"""

from computewatch.demo._scenario import SCALES, DemoResult, DemoScale, run_demo

__all__ = ["SCALES", "DemoResult", "DemoScale", "run_demo"]
