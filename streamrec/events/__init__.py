"""Match events: the durable journal, and the stage that journals and publishes them."""
