"""Face tracks across frames, the quality of each face, and per-track identity decisions."""
