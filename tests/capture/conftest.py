"""The capture tests use the clip and RTSP server fixtures of tests/conftest.py."""
