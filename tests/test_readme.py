"""Every Python block of the README and of the user guide runs as written,
in seconds.

Each block runs in its own fresh interpreter (one sets an environment
variable before scipy is imported), from an empty folder, with
scikit-learn's ConvergenceWarning turned into an error: a snippet a newcomer
pastes must neither fail nor warn.

"In seconds" is checked on each block's own CPU time, not on wall time,
which counts whatever else shares the cores: a 3-second block read 32 s of
wall time on a loaded runner. See ``_scripts.py``.
"""

import os
import re
import textwrap
from pathlib import Path

import pytest
from _scripts import run_scripts

# subprocesses / a cluster: run by .ci/run and `pytest -m slow`
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # wall seconds before a block counts as hung and is killed
PER_BLOCK = 30  # CPU seconds: a block that needs more is a defect (each takes 3-6)


def python_blocks(text):
    """(first line number, code) of every ```python block, indented or not."""
    blocks = []
    pattern = re.compile(r"^([ \t]*)```python\n(.*?)^\1```", re.M | re.S)
    for m in pattern.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        blocks.append((line, textwrap.dedent(m.group(2))))
    return blocks


# the front page and the guide pages the rest of its content moved to
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "user_guide").glob("*.md"))]
BLOCKS = [
    (f"{page.relative_to(ROOT)}:{line}", code)
    for page in PAGES
    for line, code in python_blocks(page.read_text())
]
PRELUDE = (
    "import warnings\n"
    "from sklearn.exceptions import ConvergenceWarning\n"
    "warnings.simplefilter('error', ConvergenceWarning)\n"
)


def _with_prelude(code):
    """The block with ConvergenceWarning made an error, set up after the
    block's own first line when that line sets the environment (it must run
    before scipy is imported)."""
    lines = code.splitlines(keepends=True)
    head = []
    if lines and lines[0].startswith("import os"):
        # up to the line that sets the environment (`import os`, a blank
        # line, `os.environ[...] = ...`, as ruff formats it)
        end = next(i for i, line in enumerate(lines) if "os.environ[" in line)
        head = lines[: end + 1]
    return "".join(head) + PRELUDE + "".join(lines[len(head) :])


def test_readme_has_blocks():
    readme = [where for where, _ in BLOCKS if where.startswith("README.md:")]
    assert len(readme) >= 5
    assert len(BLOCKS) > len(readme)  # the guide's too


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    env = dict(os.environ, MPLBACKEND="Agg")
    path = [str(ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    jobs = {
        line: (
            ["-c", _with_prelude(code)],
            tmp_path_factory.mktemp("block"),
            {},
        )
        for line, code in BLOCKS
    }
    return run_scripts(jobs, env, TIMEOUT)


@pytest.mark.parametrize("line", [line for line, _ in BLOCKS])
def test_readme_block_runs(runs, line):
    code = dict(BLOCKS)[line]
    if "sklearn.callback" in code:
        pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9")
        pytest.importorskip("rich")
    if "plotting" in code:
        pytest.importorskip("matplotlib")
    rc, out, cpu, folder = runs[line]
    assert rc == 0, f"block at {line} failed:\n{out[-3000:]}"
    assert cpu < PER_BLOCK, f"block at {line} took {cpu:.0f} CPU s"
    if "descent.gif" in code:
        assert (folder / "descent.gif").stat().st_size > 0
