"""[no torch] Sources, sinks, the threaded loop and its stats."""
