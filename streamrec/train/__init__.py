"""``streamrec train``: adapt FaceNet to a folder of labelled faces with the triplet loss.

:mod:`.mining` holds the P x K batches, the triplet miners and the loss; :mod:`.data` reads the
folder of people and cuts their faces as inference does; :mod:`.loop` trains and keeps the best
epoch by held-out accuracy; :mod:`.export` writes the result as a new engine beside the
published one.
"""

from __future__ import annotations

import os

# PyTorch's OpenMP threads spin at every barrier by default, which stalls them on cores shared
# with other work (see streamrec.backends.torch); OpenMP reads this once, when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
