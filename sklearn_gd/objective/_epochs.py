"""The order of an epoch's batches (:class:`EpochOrder`): slices of the
rows, or the pieces of a permutation drawn from the fit's seeded generator."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.utils import check_random_state


class LazyGenerator:
    """The host ``torch.Generator`` of a fit, seeded from ``random_state``
    (scikit-learn's ``check_random_state``) when first drawn from: a
    full-batch fit draws nothing and skips the seeding, which costs about
    0.15 ms (``numpy.random.RandomState``)."""

    def __init__(self, random_state):
        self.random_state = random_state
        self._generator = None

    def get(self) -> torch.Generator:
        if self._generator is None:
            rng = check_random_state(self.random_state)
            seed = int(rng.randint(0, np.iinfo(np.int32).max))
            self._generator = torch.Generator().manual_seed(seed)
        return self._generator


def _permutation(n, generator, device):
    """A random permutation of ``range(n)`` on ``device``, drawn from the
    host ``generator`` (seeded by ``random_state``; a :class:`LazyGenerator`
    or a ``torch.Generator``).

    On an accelerator it is drawn there, from a device generator seeded by
    ``generator``: a host permutation of 1e7 rows takes longer to draw and
    send than an epoch takes on the device.
    """
    if isinstance(generator, LazyGenerator):
        generator = generator.get()
    if device.type == "cpu" or generator is None:
        return torch.randperm(n, generator=generator).to(device)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    on_device = torch.Generator(device=device).manual_seed(seed)
    return torch.randperm(n, generator=on_device, device=device)


class EpochOrder:
    """The batch indices of each epoch over ``n_samples`` rows.

    Parameters
    ----------
    n_samples : int
    batch_size : int or None
        None for one batch holding every row.
    shuffle : bool
        Visit the rows in a new random order each epoch.
    generator : torch.Generator, LazyGenerator or None
        The only source of randomness (see :func:`_permutation`).
    """

    def __init__(self, n_samples: int, batch_size, shuffle: bool, generator):
        n = n_samples
        self.n_samples = n
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        self.shuffle = shuffle and self.batch_size < n
        self.generator = generator
        self.n_batches = math.ceil(n / self.batch_size)

    def batches(self, device) -> list:
        """The batch indices of one epoch: slices, or a permutation's pieces
        on ``device``."""
        n, bs = self.n_samples, self.batch_size
        if not self.shuffle:
            return [slice(start, min(start + bs, n)) for start in range(0, n, bs)]
        perm = _permutation(n, self.generator, device)
        return [perm[start : start + bs] for start in range(0, n, bs)]
