"""Running one task: the task-handler interface (handler.py) and its implementations (subprocess_handler.py,
fork_handler.py with forkserver.py), chosen once per run by factory.py; what they share is command.py (the
command and executor input), supervision.py (waiting on the process; reaper.py kills what a dead runner left)
and outputs.py (reading what it wrote)."""
