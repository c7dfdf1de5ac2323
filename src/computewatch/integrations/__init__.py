"""Integrations with training stacks labs use, over `computewatch.datacenter.Monitor`.

Each integration is an optional extra: ``computewatch.integrations.hf``
needs ``transformers`` (``pip install computewatch[hf]``) and is imported
only when asked for, so this package imports nothing heavy (ADR 0032).

Example::

    >>> import torch
    >>> from computewatch.integrations import hf
    >>> sorted(hf.causal_lm_inputs(torch.zeros(2, 16, dtype=torch.long)))
    ['input_ids', 'labels']
    >>> callback = hf.MonitorCallback(spec, "runs/r1", chip=chip)  # doctest: +SKIP
"""

__all__: list[str] = []
