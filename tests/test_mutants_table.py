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
