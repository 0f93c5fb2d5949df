"""Doors: access decisions that a person earns by being recognised and turning their head."""
