"""Face verification evaluation: LFW-format pair lists and the 10-fold protocol."""
