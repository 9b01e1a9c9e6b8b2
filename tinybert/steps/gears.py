"""Length bucketing on Ascend: `split` writes one feature folder per gear for `ais_bench --dymDims` (file names
kept), `merge` gathers the per-gear outputs into one usual result folder, so postprocess scores it as any other."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np

from tinybert import INPUT_NAMES
from tinybert.errors import OutputError, PipelineError, ResultFolderError, UsageError, expect
from tinybert.data.features import FEATURE_DTYPE, feature_file_name, features_provenance, load_features
from tinybert.fileio import (clean_stale_staging, create_locked_staging, natural_key, os_errors_as, publish_dir, read_json,
                     staging_dir, write_json_atomic)
from tinybert.results.resultdir import INNER_SUMMARY, STAGING_PREFIXES, ResultFolderWriter, Summary, read_summary, summary_files
from tinybert.runtimes.runner import bucket_length, parse_edges, real_lengths, throughput
from tinybert.settings import default

GEAR_PREFIX = "gear"
GEARS_INDEX = "gears.json"
PARTS_PREFIX = ".gears-"  # the per-gear ais_bench folders of one run: staging, locked while it lives


def split(bin_dir: str, edges_text: str, out_dir: str) -> dict:
    """Write `<out_dir>/gear<L>/{input_ids,segment_ids,input_mask}/input{i}.bin` ([1, L] int64)."""
    features, manifest = load_features(bin_dir)
    arrays = features.batch(slice(None))
    edges = parse_edges(edges_text, features.seq_len)
    expect(edges is not None, UsageError, "expected explicit gears for an Ascend gear model, e.g. '16,32,48,64'")
    gear_of = np.asarray([bucket_length(n, edges) for n in real_lengths(arrays[2], bin_dir)])
    index = {"features": features_provenance(bin_dir, manifest), "gears": {}}
    if os.path.exists(out_dir):  # gear folders are derived from the features: an earlier split is replaced
        expect(os.path.isfile(os.path.join(out_dir, GEARS_INDEX)), OutputError,
               f"{out_dir}: exists and is not a gear folder written by this tool; refusing to replace it")
    with os_errors_as(OutputError, f"write gear folders to {out_dir}"), staging_dir(out_dir) as tmp:
        for edge in edges:
            members = np.flatnonzero(gear_of == edge)
            if members.size == 0:
                continue
            for name, array in zip(INPUT_NAMES, arrays):
                folder = os.path.join(tmp, f"{GEAR_PREFIX}{edge}", name)
                os.makedirs(folder)
                for i in members:
                    array[i, :edge].astype(FEATURE_DTYPE).tofile(os.path.join(folder, feature_file_name(int(i))))
            index["gears"][str(edge)] = int(members.size)
        write_json_atomic(os.path.join(tmp, GEARS_INDEX), index)
        publish_dir(tmp, out_dir)
    print(f"[INFO] {len(gear_of)} samples split into gears "
          + ", ".join(f"{edge}: {n}" for edge, n in index["gears"].items()) + f" under {out_dir}")
    return index


def gear_folders(gears_dir: str) -> list[tuple[int, str]]:
    """(gear length, folder) for each gear `split` wrote."""
    index = read_json(os.path.join(gears_dir, GEARS_INDEX), UsageError, "the gear index written by 'tinybert gears split'")
    return [(int(edge), os.path.join(gears_dir, f"{GEAR_PREFIX}{edge}")) for edge in index["gears"]]


def merge(parts_root: str, output_root: str, outfmt: str, dirname: str | None = None,
          gears_dir: str | None = None) -> str:
    """Copy every `<parts_root>/gear<L>` folder's outputs into one new result folder, then remove the per-gear
    folders (kept when anything fails); with `gears_dir`, the summary records the features they came from."""
    parts = sorted((n for n in os.listdir(parts_root) if n.startswith(GEAR_PREFIX)
                    and os.path.isdir(os.path.join(parts_root, n))), key=natural_key)
    expect(parts, ResultFolderError, f"{parts_root}: expected per-gear result folders gear<L>, found none")
    features = None
    if gears_dir is not None:
        index = read_json(os.path.join(gears_dir, GEARS_INDEX), UsageError, "the gear index written by 'tinybert gears split'")
        features = index.get("features")
    writer = ResultFolderWriter(output_root, outfmt, dirname)
    compute_ms: list[float] = []
    filesinfo: dict = {}
    summaries = []
    try:
        for part in parts:
            summary = _gear_summary(os.path.join(parts_root, part)).data
            summaries.append(summary)
            compute_ms += list(summary.get("npu_compute_time_list", []))
            for name in _output_names(os.path.join(parts_root, part)):
                target = os.path.join(writer.staging, name)
                expect(not os.path.exists(target), ResultFolderError,
                       f"{parts_root}: output {name} appears in more than one gear")
                shutil.copy2(os.path.join(parts_root, part, name), target)
            for info in summary.get("filesinfo", {}).values():
                filesinfo[str(len(filesinfo))] = info
        batch_size = int(summaries[0].get("args", {}).get("batchsize", 1))

        def make_summary(final_dir):
            for info in filesinfo.values():  # outputs now live in the merged folder
                info["outfiles"] = [os.path.join(final_dir, os.path.basename(p)) for p in info.get("outfiles", [])]
            return {"filesinfo": filesinfo, "args": {**summaries[0].get("args", {}), "gears": parts, "features": features},
                    "npu_compute_time_list": compute_ms,
                    "throughput": throughput(batch_size, compute_ms)}

        final = writer.publish(make_summary)
    except BaseException:
        writer.discard()
        raise
    for part in parts:
        beside, _ = summary_files(os.path.join(parts_root, part))
        shutil.rmtree(os.path.join(parts_root, part), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(beside)
    with contextlib.suppress(OSError):
        os.rmdir(parts_root)  # only when nothing else is in it
    print(f"[INFO] merged {len(parts)} gear results ({len(filesinfo)} outputs) into {final}")
    return final


def _gear_summary(folder: str) -> Summary:
    """The ais_bench summary of one gear's folder, in either layout (its throughput is merged)."""
    summary = read_summary(folder)
    beside, inside = summary_files(folder)
    expect(summary is not None, ResultFolderError,
           f"{folder}: expected the ais_bench summary of this gear ({beside} or {inside}), found neither")
    return summary


def _output_names(folder: str) -> list[str]:
    """A gear folder's outputs: everything but an ais_infer-era summary inside it."""
    return [name for name in os.listdir(folder) if name != INNER_SUMMARY]


def ais_bench_gear_command(om: str, folder: str, parts: str, length: int, batch_size: int, outfmt: str,
                           device: int) -> list[str]:
    """ais_bench on one gear folder, at that gear's sequence length (`--dymDims`)."""
    inputs = ",".join(os.path.join(folder, name) for name in INPUT_NAMES)
    dims = ";".join(f"{name}:{batch_size},{length}" for name in INPUT_NAMES)
    return [sys.executable, "-m", "ais_bench", "--model", om, "--input", inputs, "--output", parts,
            "--output_dirname", f"{GEAR_PREFIX}{length}", "--outfmt", outfmt, "--batchsize", str(batch_size),
            "--device", str(device), "--dymDims", dims]


def run_gears(om: str, bin_dir: str, edges_text: str, batch_size: int, result_root: str,
              outfmt: str = default("OUTFMT"), device: int = int(default("DEVICE")), dirname: str | None = None) -> str:
    """The Ascend gear path: split the features per gear (`<bin_dir>.gears`), run ais_bench once per
    occupied gear into a locked staging folder under `result_root`, merge one result folder."""
    gears_dir = os.path.normpath(bin_dir) + ".gears"
    with os_errors_as(OutputError, f"write results under {result_root}"):
        os.makedirs(result_root, exist_ok=True)
        clean_stale_staging(result_root, STAGING_PREFIXES)
        parts = create_locked_staging(result_root, PARTS_PREFIX)
    try:
        split(bin_dir, edges_text, gears_dir)
        for length, folder in gear_folders(gears_dir):
            command = ais_bench_gear_command(om, folder, parts.path, length=length, batch_size=batch_size,
                                             outfmt=outfmt, device=device)
            print(f"[INFO] {shlex.join(command)}", flush=True)
            if subprocess.run(command).returncode != 0:
                raise PipelineError(f"ais_bench failed on gear {length} ({om}); its output is above")
        return merge(parts.path, result_root, outfmt, dirname, gears_dir)
    finally:
        parts.release()
