"""The end-to-end demo of an audit (`computewatch demo`), on the embedded defaults.

Example::

    >>> from computewatch.demo import run_demo
    >>> result = run_demo(Path("out/demo"), scale="tiny")  # doctest: +SKIP
    >>> result.compliant  # doctest: +SKIP
    {'lab-a': True, 'lab-b': False}
"""

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
    from computewatch.demo._scenario import SCALES, DemoResult, DemoScale, run_demo

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "SCALES": "computewatch.demo._scenario",
            "DemoResult": "computewatch.demo._scenario",
            "DemoScale": "computewatch.demo._scenario",
            "run_demo": "computewatch.demo._scenario",
        },
    )

__all__ = ["SCALES", "DemoResult", "DemoScale", "run_demo"]
