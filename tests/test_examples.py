"""Every script in examples/ runs with no arguments but ``--out`` (the convention of examples/), exits 0 and writes
its files there. New examples are picked up by the glob."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_examples():
    assert {"sample.py", "fine_tune_omniglot.py"} <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_and_writes_its_files(script, tmp_path):
    out = tmp_path / "out"
    # Run from an empty folder so that nothing is written beside the checkout; np_draw comes from this checkout.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, str(script), "--out", str(out)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stderr[-3000:]}"
    written = [path for path in out.rglob("*") if path.is_file()]
    assert written and all(path.stat().st_size > 0 for path in written), f"{script.name} wrote nothing in --out"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"], "an example wrote outside --out"
