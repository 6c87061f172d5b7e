"""The documentation's promises: every command shown runs, the API reference covers every public name, and the
model-zoo tables come from the registry.

Block convention (docs/contributing.md): a ```bash block in README.md or docs/getting-started.md is run, top to
bottom, in one scratch folder per page, with the FAST substitutions below; a ```python block there is executed
in the same folder, in page order, in one namespace per page. A block preceded by ``<!-- docs-test: slow WHY -->``
runs only under ``-m slow``. In the other pages ```shell marks commands shown but not run (they need COCO,
Human3.6M, GPUs or official files), and their ```python blocks must compile and their imports must run.
Files the README names but does not make are stand-ins made here: ``img.jpg`` (a COCO image of
shared/data), ``clip.mp4`` (shared/data's 5-frame MMPose demo clip) and ``ppt_s.pth`` / ``hot_mixste.pth``
(random-init weights of those zoo models): the run checks that the commands work, not what they predict.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "scripts"))

import docs_api  # noqa: E402 (from scripts/, put on the path above)
import docs_hooks  # noqa: E402
from conftest import DATA  # noqa: E402

RUN_PAGES = [ROOT / "README.md", DOCS / "getting-started.md"]
FENCE = re.compile(r"(?:<!--\s*docs-test:\s*(?P<mark>[^>]*?)\s*-->\s*\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```\s*$",
                   re.MULTILINE | re.DOTALL)

# (pattern, replacement, why): applied to each logical line of a run block, in order
FAST: list[tuple[str, str, str]] = [
    (r"^make quickstart$", "python -m posetokens.quickstart --fast", "the quickstart's own tiny mode (getting-started)"),
    (r"outputs/quickstart/data/", "outputs/quickstart/data_fast/", "--fast writes its data there"),
    (r"^(python -m posetokens\.data\.synthetic_motion .*)$", r"\1 --frames 60 --sequences-per-action 1",
     "short sequences, one per action"),
    (r"^(posetokens train .*)$", r"\1 --set max_steps=2 --set eval_interval=0 --set threads=1",
     "two optimiser steps"),
    (r"work_dirs/hot27/final\.pth", "work_dirs/hot27/last.pth", "a run stopped by max_steps ends with last.pth"),
]


def blocks(page: Path) -> list[tuple[str, str, str]]:
    """``(lang, body, mark)`` of every fenced block of a page, in order."""
    return [(m["lang"], m["body"], m["mark"] or "") for m in FENCE.finditer(page.read_text())]


def logical_lines(body: str) -> list[str]:
    """Shell lines with backslash continuations joined; comments and blank lines dropped."""
    out, cur = [], ""
    for line in body.splitlines():
        cur += line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        cur = re.sub(r"\s+#\s.*$", "", cur).strip()  # a trailing comment
        if cur and not cur.startswith("#"):
            out.append(re.sub(r"\s+", " ", cur))
        cur = ""
    return out


def fast(line: str) -> str:
    """A command line with the FAST substitutions applied."""
    for pattern, repl, _ in FAST:
        line = re.sub(pattern, repl, line)
    return line


# --------------------------------------------------------------------------------------------- stand-ins
@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """img.jpg, clip.mp4, ppt_s.pth and hot_mixste.pth for the README's commands (see the module docstring)."""
    import torch

    import posetokens

    d = tmp_path_factory.mktemp("stand_ins")
    shutil.copy(DATA / "coco" / "000000000785.jpg", d / "img.jpg")
    shutil.copy(DATA / "video" / "mmpose_demo.mp4", d / "clip.mp4")
    torch.manual_seed(0)
    for name, file in (("ppt_s_coco_256x192", "ppt_s.pth"), ("hot_mixste_h36m_243", "hot_mixste.pth")):
        torch.save(posetokens.create_model(name).state_dict(), d / file)
    return d


def run_page(page: Path, work: Path, include_slow: bool) -> list[str]:
    """Run a page's bash and python blocks in ``work``; returns what was run (for the failure message)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    (work / "configs").symlink_to(ROOT / "configs")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    done: list[str] = []
    cwd = os.getcwd()
    try:
        os.chdir(work)
        for lang, body, mark in blocks(page):
            if mark.startswith("slow") and not include_slow:
                continue
            if lang == "bash":
                for line in logical_lines(body):
                    cmd = fast(line)
                    done.append(cmd)
                    proc = subprocess.run(["bash", "-c", f"set -euo pipefail; {cmd}"], cwd=work, env=env,
                                          capture_output=True, text=True, timeout=900, check=False)
                    assert proc.returncode == 0, (
                        f"{page.name}: `{cmd}` exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            elif lang == "python":
                code = "\n".join(fast(line) for line in body.splitlines())
                done.append(code)
                exec(compile(code, f"{page.name}:python", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(cwd)
    return done


def _sandbox(tmp_path: Path, stand_ins: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    for f in stand_ins.iterdir():
        (work / f.name).symlink_to(f)
    return work


def test_readme_commands_run(tmp_path: Path, stand_ins: Path) -> None:
    """Every bash and python block of README.md runs (fast settings, stand-in files)."""
    done = run_page(ROOT / "README.md", _sandbox(tmp_path, stand_ins), include_slow=False)
    assert any(c.startswith("posetokens lift") for c in done) and any("PoseEstimator" in c for c in done)
    assert (tmp_path / "work" / "out" / "img.json").exists()
    assert (tmp_path / "work" / "out3d" / "clip_3d.json").exists()
    assert (tmp_path / "work" / "work_dirs" / "hot27" / "last.pth").exists()


def test_getting_started_commands_run(tmp_path: Path, stand_ins: Path) -> None:
    """Every bash and python block of docs/getting-started.md runs, in order (fast settings)."""
    done = run_page(DOCS / "getting-started.md", _sandbox(tmp_path, stand_ins), include_slow=False)
    assert any("posetokens.quickstart --fast" in c for c in done)
    work = tmp_path / "work"
    assert (work / "outputs" / "ppt_quickstart.onnx").exists() and (work / "outputs" / "one_image.png").exists()


@pytest.mark.slow
def test_slow_blocks_run(tmp_path: Path) -> None:
    """The slow-marked blocks, as written, in a copy of the repository: getting-started's set-up (a fresh venv,
    downloads torch) and the README's `make quickstart` (13 minutes) and `make test` (the fast suite)."""
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", ".git", "build", "work_dirs", "outputs",
                                                                 "__pycache__", "*.egg-info"))
    for page in (DOCS / "getting-started.md", ROOT / "README.md"):
        for lang, body, mark in blocks(page):
            if lang == "bash" and mark.startswith("slow"):
                for line in logical_lines(body):
                    proc = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True,
                                          timeout=5400, check=False)
                    assert proc.returncode == 0, f"{page.name}: `{line}`: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    out = subprocess.run([str(work / ".venv" / "bin" / "posetokens"), "models"], capture_output=True, text=True,
                         check=False)
    assert "ppt_s_coco_256x192" in out.stdout


def test_run_pages_mark_every_block() -> None:
    """README and getting-started hold only run blocks (bash, python) or shown-only ones named as such."""
    for page in RUN_PAGES:
        langs = {lang for lang, _, _ in blocks(page)}
        assert langs <= {"bash", "python", "text", "json", "yaml"}, f"{page.name}: blocks {sorted(langs)}"
        assert "bash" in langs


def test_fast_substitutions_all_apply() -> None:
    """Each FAST rule matches a command of the run pages (a rule that matches nothing is stale)."""
    lines = [ln for page in RUN_PAGES for lang, body, _ in blocks(page) if lang == "bash"
             for ln in logical_lines(body)]
    for pattern, _, why in FAST:
        assert any(re.search(pattern, ln) for ln in lines), f"FAST rule {pattern!r} ({why}) matches no command"


# ------------------------------------------------------------------------------------------ other pages
def doc_pages() -> list[Path]:
    return [ROOT / "README.md"] + sorted(p for p in DOCS.rglob("*.md") if "api" not in p.parts)


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: p.name)
def test_python_blocks_compile_and_import(page: Path) -> None:
    """Every python block of every page compiles, and its imports run."""
    for lang, body, _ in blocks(page):
        if lang != "python":
            continue
        tree = ast.parse(body, f"{page.name}:python")
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                exec(compile(ast.Module([node], []), page.name, "exec"), {})  # noqa: S102


def test_readme_is_a_front_page() -> None:
    """README.md stays a one-page introduction (issue 20: about 200 lines)."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 210


def test_readme_links_exist() -> None:
    """Every relative link and picture of README.md points at a file."""
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text()):
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).exists(), f"README.md links {target}, which does not exist"


def test_no_picture_from_random_weights_is_shown() -> None:
    """No page shows a picture whose caption says it was drawn with random weights, and every picture shown
    exists (issue 20: pictures come from trained models or ground truth)."""
    for page in doc_pages():
        text = page.read_text()
        for m in re.finditer(r"!\[([^\]]*)\]\(([^)\s]+)\)", text):
            # the caption: the alt text and the paragraph that follows the picture (not the rest of the page)
            caption = m.group(1) + " " + re.split(r"\n\s*\n", text[m.end():].strip() + "\n\n")[0]
            assert "random weights" not in caption and "random-weight" not in caption, (
                f"{page.name}: {m.group(2)} is captioned as drawn with random weights")
            base = page.parent if page.parent == DOCS else ROOT
            assert (base / m.group(2)).exists(), f"{page.name} shows {m.group(2)}, which does not exist"


# ----------------------------------------------------------------------------------------- API reference
def test_api_reference_covers_every_public_name() -> None:
    """Each name of ``posetokens.__all__`` and of every subpackage's ``__all__`` has a ``:::`` directive that
    resolves to that very object."""
    listed = {m for m, *_ in docs_api.PACKAGES}
    src = ROOT / "src" / "posetokens"
    for init in src.rglob("__init__.py"):
        module = ".".join(init.parent.relative_to(src.parent).parts)
        if "__all__" in init.read_text():
            assert module in listed, f"{module} has __all__ but no API page (scripts/docs_api.py PACKAGES)"
    for module, page, *_ in docs_api.PACKAGES:
        text = (DOCS / "api" / page).read_text()
        directives = re.findall(r"^::: (\S+)$", text, re.MULTILINE)
        mod = importlib.import_module(module)
        for name in mod.__all__:
            hits = [d for d in directives if d.rsplit(".", 1)[-1] == name]
            assert hits, f"docs/api/{page}: no entry for {module}.{name} (run python scripts/docs_api.py)"
            owner, attr = hits[0].rsplit(".", 1)
            assert getattr(importlib.import_module(owner), attr) is getattr(mod, name), hits[0]


def test_api_pages_are_current() -> None:
    """docs/api/*.md equal what scripts/docs_api.py writes now."""
    assert docs_api.main(["--check"]) == 0, "run python scripts/docs_api.py"


# ---------------------------------------------------------------------------------------------- model zoo
def test_zoo_figures_cover_the_registry() -> None:
    """docs/zoo_figures.json has a row for every registered model and none for others; the README's table is
    the one rendered from the registry."""
    docs_hooks.load_figures()
    assert not docs_hooks.update_readme(check=True), "README zoo table is stale: python scripts/docs_zoo.py --readme"


def test_zoo_tables_fill_every_column() -> None:
    """The rendered zoo table has as many cells in each row as in its header (its 'official code' column was
    empty in every row), names each model's official repository, and prints the stored figures without a second
    rounding: TokenPose-L/D6's paper-convention GFLOPs are 9.064 in the spec (tokenpose_ppt.md), printed 9.065
    from a 4-decimal 9.0645."""
    table = docs_hooks.zoo_table(["all"]).splitlines()
    widths = {len(row.strip("|").split("|")) for row in table}
    assert widths == {9}, widths
    rows = {row.split("|")[1].strip(" `"): [c.strip() for c in row.strip("|").split("|")] for row in table[2:]}
    assert rows["ppt_s_coco_256x192"][-1] == "[HowieMa/PPT](https://github.com/HowieMa/PPT)"
    assert rows["tokenpose_l_d6_coco_256x192"][5] == "9.064"


@pytest.mark.parametrize("name", ["gtpt_t_coco_256x192", "tpc_mhformer_h36m_351"])
def test_zoo_figures_are_current(name: str) -> None:
    """Regression guard: the stored figures of the cheap models equal a fresh measurement (the paper rows they
    sit beside are checked against the papers in the model tests)."""
    from posetokens.engine.zoo import model_figures

    stored = json.loads(docs_hooks.FIGURES.read_text())[name]
    fresh = {k: v for k, v in model_figures(name).items() if k != "model"}
    assert fresh == stored, "python scripts/docs_zoo.py --only " + name
