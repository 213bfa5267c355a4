"""Running one task: the task-handler interface and its implementations."""
