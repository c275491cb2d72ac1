"""README-as-tests: every ```python block of README.md and docs/*.md runs, so the documentation cannot rot.

The blocks of one file run in order in one namespace (a page builds on its earlier blocks), in an empty working
folder, with this checkout's np_draw. A block that cannot run here (it needs the shared data, the network or a GPU)
is excluded by putting the marker line ``<!-- no-test: the reason -->`` right before its opening fence; use it
sparingly, and always with a reason.
"""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!-- no-test: (?P<reason>\S.*?) -->\s*$")
# Optional packages some pages use, from the package's extras
EXTRAS = ("datasets", "gradio")


def python_blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line number, code, reason to skip or None) for each ```python block of ``page``."""
    text = page.read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.fullmatch(before.strip())
        if "no-test" in before and skip is None:
            raise ValueError(f"{page.name}: malformed marker {before!r}; write <!-- no-test: the reason -->")
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1), skip and skip["reason"]))
    return blocks


def test_the_readme_has_runnable_python():
    assert any(reason is None for _, _, reason in python_blocks(ROOT / "README.md"))


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(ROOT).as_posix() for page in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"doc_{page.stem}"}
    for line, code, reason in python_blocks(page):
        if reason is None:
            try:
                exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)  # noqa: S102 - the docs' own code
            except ModuleNotFoundError as error:
                # A page's blocks that use an extra (the dev extra installs them) stop at the first one where it is not
                # installed, as CI's run on the oldest dependencies is, which installs none
                if error.name not in EXTRAS or importlib.util.find_spec(error.name) is not None:
                    raise
                pytest.skip(f"{page.name}:{line} needs {error.name}, which is not installed")


def test_the_ci_command_is_in_the_readme():
    # .ci/run greps this exact line out of the README and runs it.
    assert "\npip install torch==2.13.0 -e '.[dev]' && python -m pytest\n" in (ROOT / "README.md").read_text()
