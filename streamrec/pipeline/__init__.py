"""The streaming pipeline: stage processes, the supervisor that runs them, and what they share."""
