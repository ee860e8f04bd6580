"""The training engine (Lightning), losses, schedules and callbacks shared by every model family."""
