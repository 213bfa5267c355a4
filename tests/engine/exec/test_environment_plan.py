"""Where container components run: the one-line notice for a program taken from this machine instead of its image
(kfp_lineage.engine.exec.environment_plan; the decisions themselves are tested in test_environments.py)."""

from kfp_lineage.engine.exec import environment_plan

# A compiled lightweight component without a pip prefix (install_kfp_package=False, or an image with kfp in it).
LIGHTWEIGHT = ("sh", "-ec", 'program_path=$(mktemp -d)\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
               '_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path '
               '"$program_path/ephemeral_component.py" "$@"\n', "def f(): pass")


def _task(label, image, *command, executor=None):
    return environment_plan.TaskRequest(label, executor or f"exec-{label}", image, tuple(command))


def test_a_container_program_from_this_machine_is_named_once_per_executor_in_every_mode():
    tasks = [_task("echo", "alpine", "echo", "hi"), _task("loop/echo", "alpine", "echo", "hi", executor="exec-echo"),
             _task("shell", "bash:5", "sh", "-c", "echo $0", "x")]
    for mode in environment_plan.MODES:
        plan = environment_plan.plan_environments(tasks, mode)
        assert plan.notices == (
            "task 'echo' (and 1 more task) runs 'echo' from this machine, not in its image 'alpine'",
            "task 'shell' runs 'sh' from this machine, not in its image 'bash:5'",
        )
        assert {decision.kind for decision in plan.decisions.values()} == {"current"}


def test_python_programs_placeholders_and_kfp_programs_get_no_notice():
    tasks = [_task("py", "python:3.12", "python3", "-c", "print(1)"),
             _task("py-path", "python:3.12", "/usr/bin/python3.12", "-m", "tool"),
             _task("kfp", "gcr.io/team/with-kfp:1", *LIGHTWEIGHT),
             _task("templated", "tool:1", "{{$.inputs.parameters['program']}}")]
    assert environment_plan.plan_environments(tasks, "auto").notices == ()
