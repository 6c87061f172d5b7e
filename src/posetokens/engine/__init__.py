"""Training, checkpoints, schedules and counting."""
