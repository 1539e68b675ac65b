"""Every Python block of the README and the docs pages runs, so the docs cannot drift.

The blocks of one page run in order in one namespace, as a reader would type
them, in a fresh folder. Budgets shrink to a few games: `Agent.train` and
`Agent.play` run for real with `nb_epoch` capped at `_EPOCHS`. A block that
is not meant to run says so on the line before its fence:
`<!-- not run: why -->`.
"""

import functools
import inspect
import re
from pathlib import Path

import pytest

from qlearning4k import Agent

# The pages show one API; other tests run it on every backend.
pytestmark = pytest.mark.backend_free

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_EPOCHS = 3  # games of training and of play per call, at most
_STEPS = 300  # env steps of training per call with total_timesteps, at most
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_SKIP = re.compile(r"<!--\s*not run:\s*(\S.*?)\s*-->\s*$")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """`(line, source, skip_reason)` of each fenced Python block; `line` is its first line."""
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        line = text.count("\n", 0, match.start(2)) + 1
        blocks.append((line, match.group(2), skip.group(1) if skip else None))
    return blocks


def _capped(method):
    """`method` with its budget capped (`nb_epoch` at `_EPOCHS`, `total_timesteps` at
    `_STEPS`): the real call, a tiny budget."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        if arguments.get("total_timesteps") is not None:
            arguments["total_timesteps"] = min(arguments["total_timesteps"], _STEPS)
        else:
            arguments["nb_epoch"] = min(arguments["nb_epoch"] or _EPOCHS, _EPOCHS)
        return method(*bound.args, **bound.kwargs)

    return wrapper


def run_page(path: Path) -> int:
    """Runs the page's blocks in order in one namespace; returns how many ran."""
    text = path.read_text(encoding="utf-8")
    namespace = {"__name__": f"docs_{path.stem}"}
    ran = 0
    for line, source, skip in python_blocks(text):
        if skip is not None:
            continue
        # Padded so that a traceback names the line in the Markdown file.
        code = compile("\n" * (line - 1) + source, str(path), "exec")
        exec(code, namespace)
        ran += 1
    return ran


@pytest.fixture
def tiny_budgets(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("train", "play"):
        monkeypatch.setattr(Agent, name, _capped(getattr(Agent, name)))


PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize(
    "page", PAGES_WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_CODE]
)
def test_python_blocks_of_the_page_run(page, tiny_budgets):
    ran = run_page(page)
    assert ran > 0, f"{page} has Python blocks but none ran"


def test_every_public_name_has_an_api_reference_entry():
    import qlearning4k
    import qlearning4k.games

    entries = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        entries.update(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    public = {f"qlearning4k.{n}" for n in qlearning4k.__all__ if n != "__version__"}
    public |= {f"qlearning4k.games.{n}" for n in qlearning4k.games.__all__}
    public |= {
        "qlearning4k.testing.check_game",
        "qlearning4k.render.save_gif",
        "qlearning4k.render.save_video",
        "qlearning4k.cli.main",
    }
    assert sorted(public - entries) == []


def test_relative_links_of_the_readme_point_to_files():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert targets and missing == []


def test_the_readme_and_the_guides_have_code_that_runs():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES_WITH_CODE}
    for page in ("README.md", "docs/getting-started.md", "docs/custom-games.md"):
        assert page in names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\nx = 1\n```\n", [(2, "x = 1\n", None)]),
        ("<!-- not run: downloads -->\n```python\nx = 1\n```\n", [(3, "x = 1\n", "downloads")]),
        ("```bash\nls\n```\n```python\ny = 2\n```\n", [(5, "y = 2\n", None)]),
        ("```python\n```\n", [(2, "", None)]),
        ("text\n```\nplain\n```\n", []),
    ],
    ids=["one block", "skipped", "after a bash block", "empty", "no language"],
)
def test_python_blocks_finds_each_block_and_its_skip_marker(text, expected):
    assert python_blocks(text) == expected


def test_a_broken_block_fails_with_its_line_in_the_page(tmp_path, tiny_budgets):
    page = tmp_path / "broken.md"
    page.write_text("# Broken\n\n```python\nfrom qlearning4k import Agent\nAgent(None)\n```\n")
    with pytest.raises(TypeError, match=r"keras\.Model") as info:
        run_page(page)
    frames = [f for f in info.traceback if str(f.path) == str(page)]
    assert frames and frames[-1].lineno + 1 == 5  # 0-based in pytest's traceback


def test_nb_epoch_is_capped_but_every_other_argument_reaches_train(tiny_budgets, model_factory):
    from qlearning4k.games import Catch

    make_model = model_factory
    history = Agent(make_model(), seed=0).train(Catch(seed=0), 50, batch_size=8, verbose=0)
    assert len(history.epoch) == _EPOCHS
    history = Agent(make_model(), seed=0).train(Catch(seed=0), total_timesteps=5000, verbose=0)
    assert sum(history.history["steps"]) <= _STEPS
    with pytest.raises(ValueError, match="batch_size"):
        Agent(make_model(), seed=0).train(Catch(seed=0), nb_epoch=50, batch_size=0)
