"""The embedded demo: a clip rendered from public-domain portraits that ship with installed
packages, one of them enrolled, run through the real pipeline (``streamrec demo``)."""
