"""``streamrec train``: adapt FaceNet to a folder of labelled faces with the triplet loss.

:mod:`.mining` holds the P x K batches, the triplet miners and the loss; :mod:`.data` reads the
folder of people and cuts their faces as inference does; :mod:`.loop` trains and keeps the best
epoch by held-out accuracy; :mod:`.export` writes the result as a new engine beside the
published one.
"""
