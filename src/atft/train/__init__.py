"""Training: losses, the loop, health monitors, checkpoints."""
