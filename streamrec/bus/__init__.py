"""The message bus between stages: one schema module, one sockets module, ZeroMQ underneath."""
