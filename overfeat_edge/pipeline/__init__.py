"""[no torch] preprocess -> pyramid -> (backend) -> decode -> merge."""
