"""Training data: the image-folder index with its per-label split, and the datasets.

:mod:`nas.data.index` needs only numpy and h5py (the ``data index`` command runs
on a login node); :mod:`nas.data.dataset` and :mod:`nas.data.digits` need torch.
"""
