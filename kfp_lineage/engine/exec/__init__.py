"""Running one task: the task-handler interface (handler.py) and its implementations (subprocess_handler.py,
fork_handler.py with forkserver.py, one warm server per environment), chosen once per run by factory.py; what they
share is command.py (the command and executor input), supervision.py (waiting on the process; reaper.py kills what
a dead runner left) and outputs.py (reading what it wrote). The environment a task runs in is chosen by
environment_plan.py and built by environments.py (with environment_spec.py, uv_installer.py, interpreters.py)
before the run starts."""
