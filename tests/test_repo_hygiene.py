"""`.gitignore` covers every folder the README's own examples create, so following the README never
leaves untracked output in `git status`."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import REPO

# the folders the scripts write by default (test/common.sh, eval_all.sh, benchmark.sh) and the inputs the
# README unpacks into the checkout
DEFAULT_FOLDERS = ["bert_bin", "result", "eval_results", "benchmark_results", "glue_dir", "SST-2_model", ".venv"]
FOLDER_SETTINGS = re.compile(r"\b(BIN_DIR|RESULT_DIR|EVAL_DIR|BENCH_DIR)=(\./)?([\w.\-]+)")


def _git_ok() -> bool:
    if shutil.which("git") is None:
        return False
    return subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=REPO, capture_output=True).returncode == 0


@pytest.mark.skipif(not _git_ok(), reason="not a git checkout (e.g. an unpacked archive): nothing to ignore")
def test_gitignore_covers_the_folders_the_readme_examples_create():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = {(setting, folder) for setting, _, folder in FOLDER_SETTINGS.findall(readme)}
    assert ("BIN_DIR", "bert_bin_test") in named  # the unlabelled example: the pattern does find examples
    paths = []
    for folder in DEFAULT_FOLDERS + [folder for _, folder in named]:
        paths.append(f"{folder}/some_file")
    for setting, folder in {("BIN_DIR", "bert_bin"), *named}:
        if setting == "BIN_DIR":  # its gear split, and the staging folders and locks of both
            paths += [f"{folder}.gears/gear16/input_ids/input0.bin", f".{folder}.partial-a1b2c3d4/manifest.json",
                      f".{folder}.partial-a1b2c3d4.lock", f".{folder}.gears.partial-a1b2c3d4.lock"]
    paths += ["TinyBERT_sim_bs32.onnx", "TinyBERT_bs32.om", "fusion_result.json", "kernel_meta/x.o"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", "--non-matching", *paths], cwd=REPO,
                          capture_output=True, text=True)
    not_ignored = [line.split("\t")[-1] for line in proc.stdout.splitlines() if line.startswith("::")]
    assert not_ignored == [], f"not covered by .gitignore: {not_ignored}"


def _github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters of any script kept),
    spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_in_page_links_lead_to_headings():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    anchors = {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", readme)
    assert links and "性能基准" in links
    assert [link for link in links if link not in anchors] == []
