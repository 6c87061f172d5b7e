"""``make mutate``'s table stays plantable: every mutant's text is found once in its file, the planted file still
compiles (and differs), and every test it names exists. The mutants themselves run in ``make mutate`` (minutes);
this finds a stale anchor, or a planted text that an edit of the table broke, in a second of ``make test``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_mutant_plants_a_compiling_bug_and_names_existing_tests() -> None:
    spec = importlib.util.spec_from_file_location("posetokens_mutate_table", REPO / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    mutate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mutate  # its dataclasses look their module up
    try:
        spec.loader.exec_module(mutate)
    finally:
        del sys.modules[spec.name]
    problems: list[str] = []
    names = [m.name for m in mutate.MUTANTS]
    problems += [f"{n}: named twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for m in mutate.MUTANTS:
        original = (REPO / m.path).read_text()
        src = original
        for old, new in m.patches:
            if src.count(old) != 1:
                problems.append(f"{m.name}: its text is found {src.count(old)} times in {m.path}")
                break
            src = src.replace(old, new)
        else:
            if src == original:
                problems.append(f"{m.name}: plants nothing")
            try:
                compile(src, m.path, "exec")
            except SyntaxError as e:
                problems.append(f"{m.name}: the planted {m.path} does not compile ({e.msg}, line {e.lineno})")
        for node in m.tests:
            path, _, func = node.partition("::")
            text = (REPO / path).read_text() if (REPO / path).is_file() else ""
            if not text or (func and f"def {func.split('[')[0]}(" not in text):  # a file alone runs all of it
                problems.append(f"{m.name}: no test {node}")
    assert not problems, "\n".join(problems)


def test_a_forked_run_whose_status_was_lost_runs_once_more_and_nothing_else_does(monkeypatch) -> None:
    """The harness's one retry: a run whose exit status the fork server lost (255, pytest's code written) runs once
    more and the second run's verdict counts; any other failure to give a verdict stays an ERROR (70), once."""
    spec = importlib.util.spec_from_file_location("posetokens_mutate_retry", REPO / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    mutate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mutate
    try:
        spec.loader.exec_module(mutate)
    finally:
        del sys.modules[spec.name]
    lost = (70, "F\n(the forked run ended with exit code 255 and pytest's code 1: no verdict)")
    for first, then, want, runs in ((lost, (1, "FAILED t"), 1, 2), (lost, lost, 70, 2),
                                    ((70, "(the forked run ended with exit code 1 and pytest's code unwritten: no "
                                          "verdict)"), (1, "FAILED t"), 70, 1), ((1, "FAILED t"), (0, ""), 1, 1)):
        calls = iter([first, then])
        made: list[int] = []

        def once(*a: object, calls=calls, made=made) -> tuple[int, str]:
            made.append(1)
            return next(calls)

        monkeypatch.setattr(mutate, "_run_pytest_forked_once", once)
        assert mutate.run_pytest_forked(Path("."), Path("."), [], 1.0)[0] == want and len(made) == runs
