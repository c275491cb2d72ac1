"""The benchmark and maintenance scripts answer a user's mistake in one line, before any long work, and --help
writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_missing_data_folder_is_one_line_not_a_traceback(tmp_path):
    done = run("benchmarks/bench_ablation.py", "--data", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("bench_ablation.py: error:") and "train.npz" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_sweep_finetune_refuses_a_bad_setting_before_loading_anything(tmp_path):
    # The data folder does not exist: the settings are checked first, the typo in the last one named.
    done = run("benchmarks/sweep_finetune.py", "{}", '{"decoder_lr": 1e-3, "nope": 1}', "--data",
               str(tmp_path / "nowhere"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "unknown FitConfig fields ['nope']" in done.stderr


def test_make_api_docs_help_writes_nothing(tmp_path):
    api = ROOT / "docs" / "api.md"
    before = api.stat().st_mtime_ns
    done = run("scripts/make_api_docs.py", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "usage: make_api_docs.py" in done.stdout and "wrote" not in done.stdout
    assert api.stat().st_mtime_ns == before
