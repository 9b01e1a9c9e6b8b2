"""Result folders in ais_bench's layout, staged hidden and renamed into place under a name no other run holds,
and a strict reader that takes every ais_bench generation's layout (the old `sumary.json` too)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass

import numpy as np

from tinybert import NUM_LABELS
from tinybert.errors import ResultFolderError, UsageError, expect
from tinybert.fileio import clean_stale_staging, create_locked_staging, natural_key, read_json, reserve_dir, write_json_atomic
from tinybert.settings import TIMESTAMP_FORMAT, default

FORMATS = ("TXT", "BIN", "NPY")
SUMMARY_SUFFIX = "_summary.json"
INNER_SUMMARY = "sumary.json"  # (sic) the ais_infer-era summary, inside the result folder
_PARTIAL_MARK = ".partial-"
# Hidden work folders that runs make in a result root: this writer's, and the per-gear ais_bench
# folders of the Ascend gear path (test/ais_inference.sh). Those whose writer is gone are removed.
STAGING_PREFIXES = (f".result{_PARTIAL_MARK}", ".gears-")


def format_txt(array: np.ndarray) -> str:
    """ais_bench TXT: each row's values as %f, each followed by a space, then a newline."""
    rows = np.atleast_2d(array)
    return "".join("".join(f"{value:f} " for value in row) + "\n" for row in rows)


def output_file_name(stem: str, output_index: int, outfmt: str) -> str:
    return f"{stem}_{output_index}.{outfmt.lower()}"


def summary_path(root: str, name: str) -> str:
    return os.path.join(root, f"{name}{SUMMARY_SUFFIX}")


@dataclass(frozen=True)
class Summary:
    """A result folder's inference summary and the file it was read from."""

    data: dict
    path: str


def summary_files(folder: str) -> tuple[str, str]:
    """Where a result folder's summary can be: beside it (ais_bench, this runner) and inside it (ais_infer)."""
    folder = os.path.normpath(folder)
    return summary_path(os.path.dirname(folder), os.path.basename(folder)), os.path.join(folder, INNER_SUMMARY)


def read_summary(folder: str) -> Summary | None:
    """The summary of result folder `folder`, whichever ais_bench generation wrote it; None without one. Both
    layouts present must hold the same JSON: two that differ are refused (either could record other outputs)."""
    beside, inside = summary_files(folder)
    found = [Summary(read_json(path, ResultFolderError, what), path)
             for path, what in ((beside, "the inference summary written beside the result folder"),
                                (inside, f"the ais_infer summary inside the result folder ({INNER_SUMMARY})"))
             if os.path.isfile(path)]
    if len(found) == 2:
        expect(found[0].data == found[1].data, ResultFolderError,
               f"{folder}: expected one inference summary, got two that differ: {beside} and {inside}; "
               "remove the one that does not belong to these outputs")
    return found[0] if found else None


class ResultFolderWriter:
    """Collects per-sample outputs, then publishes them as one complete ais_bench-style folder."""

    def __init__(self, root: str, outfmt: str = default("OUTFMT"), dirname: str | None = None,
                 started: float | None = None):
        outfmt = outfmt.upper()
        expect(outfmt in FORMATS, UsageError, f"expected --outfmt among {', '.join(FORMATS)}, got {outfmt!r}")
        if dirname is not None:
            expect(dirname and os.sep not in dirname and not dirname.startswith("."), UsageError,
                   f"expected a plain folder name for --output_dirname, got {dirname!r}")
            expect(not os.path.exists(os.path.join(root, dirname)), ResultFolderError,
                   f"{os.path.join(root, dirname)}: already exists; refusing to overwrite earlier results "
                   "(choose another --output_dirname)")
        self.root, self.outfmt, self.dirname = root, outfmt, dirname
        self.started = time.time() if started is None else started
        os.makedirs(root, exist_ok=True)
        clean_stale_staging(root, STAGING_PREFIXES)
        self._staging = create_locked_staging(root, f".result{_PARTIAL_MARK}")
        self.staging = self._staging.path
        self.final_path: str | None = None

    def write(self, stem: str, output_index: int, array: np.ndarray) -> str:
        name = output_file_name(stem, output_index, self.outfmt)
        path = os.path.join(self.staging, name)
        if self.outfmt == "TXT":
            with open(path, "w", encoding="ascii") as handle:
                handle.write(format_txt(array))
        elif self.outfmt == "BIN":
            np.ascontiguousarray(array).tofile(path)
        else:
            np.save(path, array)
        return name

    def _reserve_name(self) -> str:
        """A new folder name under the root; with --output_dirname that exact name or an error."""
        base = self.dirname or time.strftime(TIMESTAMP_FORMAT, time.localtime(self.started))
        # A summary without its folder is still an earlier run's: its name is never reused.
        path = reserve_dir(self.root, base, exact=self.dirname is not None,
                           taken=lambda name: os.path.exists(summary_path(self.root, name)))
        return os.path.basename(path)

    def publish(self, make_summary) -> str:
        """Reserve the final name, write `make_summary(final_path)` beside it, then move the outputs in."""
        name = self._reserve_name()
        final, summary = os.path.join(self.root, name), summary_path(self.root, name)
        try:
            write_json_atomic(summary, make_summary(final))
            os.rename(self.staging, final)  # replaces the empty folder reserved above
        except BaseException:
            # Undo the reservation so no summary points at a folder that never got its outputs. The
            # name is ours (we created the folder), so a summary under it can only be this run's.
            with contextlib.suppress(OSError):
                os.rmdir(final)
            with contextlib.suppress(OSError):
                os.unlink(summary)
            raise
        self._staging.release()
        self.final_path = final
        return final

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self._staging.release()


def _parse_txt(path: str, num_labels: int) -> np.ndarray:
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ResultFolderError(f"{path}: expected ais_bench TXT (ASCII numbers), got binary content") from None
    expect(text.endswith("\n"), ResultFolderError,
           f"{path}: expected a complete TXT row ending in a newline, got a truncated file ({len(raw)} bytes)")
    rows = [line.split() for line in text.splitlines() if line.strip()]
    try:
        values = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except ValueError:
        raise ResultFolderError(f"{path}: expected {num_labels} numbers per row, got {text.strip()[:60]!r}") from None
    expect(values.shape == (1, num_labels), ResultFolderError,
           f"{path}: expected one row of {num_labels} logits, got shape {list(values.shape)}")
    return values[0]


def _parse_bin(path: str, num_labels: int) -> np.ndarray:
    size = os.path.getsize(path)
    expect(size == num_labels * 4, ResultFolderError,
           f"{path}: expected {num_labels * 4} bytes ({num_labels} float32 logits), got {size}")
    return np.fromfile(path, dtype="<f4").astype(np.float64)


def _parse_npy(path: str, num_labels: int) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            array = np.load(handle, allow_pickle=False)
            trailing = len(handle.read())
    except (ValueError, OSError, EOFError) as exc:
        raise ResultFolderError(f"{path}: expected a .npy array, got unreadable content ({exc})") from None
    # np.load stops after the array: bytes beyond it mean the file is not what was written.
    expect(trailing == 0, ResultFolderError, f"{path}: expected one .npy array, got {trailing} extra bytes after it")
    expect(array.size == num_labels and array.dtype.kind == "f", ResultFolderError,
           f"{path}: expected {num_labels} float logits (shape [1, {num_labels}]), got {array.dtype} {list(array.shape)}")
    return array.reshape(-1).astype(np.float64)


_PARSERS = {"txt": _parse_txt, "bin": _parse_bin, "npy": _parse_npy}


def _describe(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}{f' ... ({len(names)} in all)' if len(names) > limit else ''}"


def read_logits(folder: str, stems: list[str], num_labels: int = NUM_LABELS) -> np.ndarray:
    """Logits `[len(stems), num_labels]`, row i from `<stems[i]>_0.<fmt>`; every deviation is an error."""
    expect(os.path.isdir(folder), ResultFolderError,
           f"{folder}: expected a result folder written by test/ais_inference.sh, found no such folder")
    expect(not is_staging_folder(folder), ResultFolderError,
           f"{folder}: expected a published result folder, got the staging folder of an unfinished or "
           "interrupted run (run the inference again)")
    present = sorted((n for n in os.listdir(folder) if not n.startswith(".") and n != INNER_SUMMARY), key=natural_key)
    extensions = sorted({os.path.splitext(n)[1].lstrip(".").lower() for n in present})
    known = [ext for ext in extensions if ext in _PARSERS]
    expect(len(known) == 1, ResultFolderError,
           f"{folder}: expected output files of one format (txt, bin or npy), got "
           f"{', '.join(extensions) if extensions else 'an empty folder'}")
    ext = known[0]
    expected = [f"{stem}_0.{ext}" for stem in stems]
    expected_set, present_set = set(expected), set(present)
    missing = [n for n in expected if n not in present_set]
    extra = [n for n in present if n not in expected_set]
    expect(not missing and not extra, ResultFolderError,
           f"{folder}: expected exactly {len(expected)} outputs {expected[0]}..{expected[-1]} (one per sample "
           "in the manifest); " + "; ".join(
               part for part in ((f"missing {_describe(missing)}" if missing else ""),
                                 (f"unexpected {_describe(extra)}" if extra else "")) if part))
    parser = _PARSERS[ext]
    return np.stack([parser(os.path.join(folder, name), num_labels) for name in expected])


def is_staging_folder(path: str) -> bool:
    """A writer's hidden work folder: it may hold every output yet still be unfinished."""
    return os.path.basename(os.path.normpath(path)).startswith(f".result{_PARTIAL_MARK}")
