"""Training data: the image-folder index with its per-label split, and the datasets.

:mod:`nas.data.index` needs only numpy and h5py (the ``data index`` command runs
on a login node); :mod:`nas.data.dataset` and :mod:`nas.data.digits` need torch.
"""

#: Largest split seed: index and shard files store it as a signed 64-bit HDF5
#: attribute, so a larger one cannot be written (bound at the command line).
SEED_MAX = 2**63 - 1
