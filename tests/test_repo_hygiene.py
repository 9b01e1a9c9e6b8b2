"""`.gitignore` covers every folder the README's own examples create, so following the README never
leaves untracked output in `git status`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import REPO

# the folders the scripts write by default (test/common.sh, eval_all.sh, benchmark.sh) and the inputs the
# README unpacks into the checkout
DEFAULT_FOLDERS = ["bert_bin", "result", "eval_results", "benchmark_results", "glue_dir", "SST-2_model", ".venv"]
FOLDER_SETTINGS = re.compile(r"\b(BIN_DIR|RESULT_DIR|EVAL_DIR|BENCH_DIR)=(\./)?([\w.\-]+)")
# the documentation: README.md and every Markdown file under docs/
MARKDOWN = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _git_ok() -> bool:
    if shutil.which("git") is None:
        return False
    return subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=REPO, capture_output=True).returncode == 0


@pytest.mark.skipif(not _git_ok(), reason="not a git checkout (e.g. an unpacked archive): nothing to ignore")
def test_gitignore_covers_the_folders_the_readme_examples_create():
    readme = "\n".join(path.read_text(encoding="utf-8") for path in MARKDOWN)  # README.md and docs/
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


FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[([^\]]+)\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$", re.M)
REFERENCE_USE = re.compile(r"\[([^\]]+)\]\[([^\]]*)\]")


def _prose(text: str) -> str:
    """The Markdown without its fenced code blocks and code spans (a `# comment` in a bash block is no heading,
    a `[x](y)` in code no link)."""
    text = FENCE.sub("", text)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text, flags=re.S)


def _anchors(path: Path, text: str | None = None) -> set[str]:
    """The anchors GitHub makes in a Markdown file: one per heading (a repeated heading gets -1, -2, ...), and
    explicit <a name=...> / id=... anchors."""
    text = FENCE.sub("", path.read_text(encoding="utf-8") if text is None else text)
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^ {0,3}#{1,6} +(.+?)(?: +#+)? *$", text, re.M):
        slug = _github_anchor(re.sub(r"<[^>]+>", "", heading).replace("`", ""))
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    anchors |= set(re.findall(r"""<a\s+(?:name|id)=["']([^"']+)["']""", text))
    return anchors


def _broken(path: Path, text: str | None = None) -> list[str]:
    """The links of one Markdown file (inline links and images, reference definitions and uses) that lead
    nowhere: a missing file, an anchor that is no heading there, a reference with no definition."""
    text = path.read_text(encoding="utf-8") if text is None else text
    prose = _prose(text)
    broken = []
    defined = {label.lower() for label, _ in REFERENCE_DEFINITION.findall(prose)}
    for shown, label in REFERENCE_USE.findall(prose):
        if (label or shown).lower() not in defined:
            broken.append(f"[{shown}][{label}]: no such reference definition")
    targets = INLINE_LINK.findall(prose) + [target for _, target in REFERENCE_DEFINITION.findall(prose)]
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.\-]*:", target, re.I):  # https:, mailto: ... : not checked offline
            continue
        file_part, _, anchor = target.partition("#")
        if not file_part:  # in this page
            if unquote(anchor) not in _anchors(path, text):
                broken.append(f"{target}: no such heading in {path.relative_to(REPO)}")
            continue
        linked = (path.parent / unquote(file_part)).resolve()
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (linked.suffix != ".md" or unquote(anchor) not in _anchors(linked)):
            broken.append(f"{target}: no such heading in {linked.relative_to(REPO)}")
    return broken


def test_readme_in_page_links_lead_to_headings():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    anchors = _anchors(REPO / "README.md")
    links = re.findall(r"\]\(#([^)]+)\)", readme)
    assert links and "性能基准" in links
    assert [link for link in links if link not in anchors] == []


def test_the_link_check_sees_every_form():
    """The checker itself: each link form is found, and a broken one of each form is reported."""
    assert _github_anchor("CPU 路径怎么选：fp32、int8") == "cpu-路径怎么选fp32int8"
    assert _github_anchor("在 Ray 上运行（ENGINE=ray）") == "在-ray-上运行engineray"
    page = REPO / "docs" / "page.md"  # never written: the checker is given its text
    text = ("# Top\n## A b\n## A b\n```bash\n# not a heading [x](gone.md)\n```\n"
            "[in](#a-b-1) [gone](#nope) [up](../README.md#测试) [up2](../README.md#nope) `[code](gone.md)`\n"
            "![img](benchmark.png) [file](missing.md) [ref][r] [bad ref][none] [web](https://example.com/x)\n"
            "[r]: cpu-paths.md#同时进行的调用requests\n[s]: settings.md#nope\n")
    assert _anchors(page, text) == {"top", "a-b", "a-b-1"}
    assert sorted(_broken(page, text)) == sorted([
        "#nope: no such heading in docs/page.md", "../README.md#nope: no such heading in README.md",
        "missing.md: no such file", "[bad ref][none]: no such reference definition",
        "settings.md#nope: no such heading in docs/settings.md"])


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_leads_somewhere(path):
    """README.md and docs/: in-page anchors, files, anchors in other files, reference-style links."""
    assert _broken(path) == []
