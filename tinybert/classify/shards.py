"""The work folder of a classify run (.<output name>.classify/: run.json, lock, one shard and record per chunk,
final.json), every file written atomically, so a SIGKILL at any point leaves the old or the new version."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil

from tinybert.classify.corpus import ChunkPlan, ChunkSpec
from tinybert.data.dataset import file_sha256
from tinybert.errors import DataFormatError, OutputError, UsageError, expect
from tinybert.fileio import atomic_path, hold_lock, os_errors_as, read_json, write_bytes_atomic, write_json_atomic

RECORD_FORMAT = "tinybert-classify/1"
COLUMNS = ("index", "label", "p_negative", "p_positive")
SENTENCE = "sentence"
COPY_BLOCK = 1 << 20
FILE_MODE = 0o666  # less the umask: the output and its shards are as readable as any file the user makes


def output_header(with_sentence: bool) -> str:
    return "\t".join(COLUMNS + ((SENTENCE,) if with_sentence else ())) + "\n"


def work_dir_for(output: str) -> str:
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.classify")


def _shard_path(work_dir: str, number: int) -> str:
    return os.path.join(work_dir, f"chunk-{number:06d}.tsv")


def _done_path(work_dir: str, number: int) -> str:
    return os.path.join(work_dir, f"chunk-{number:06d}.json")


def write_shard(work_dir: str, spec: ChunkSpec, text: str, counts: dict) -> dict:
    """Write chunk `spec`'s rows, then its record; returns the record. Both engines write through here."""
    data = text.encode("utf-8")
    record = {"chunk": spec.number, "first_line": spec.first_line, "lines": spec.lines, "bytes": [spec.start, spec.end],
              "input_sha256": spec.sha256, "shard_bytes": len(data), "shard_sha256": hashlib.sha256(data).hexdigest(),
              **counts}
    path = _shard_path(work_dir, spec.number)
    with os_errors_as(OutputError, f"write {path}"):
        write_bytes_atomic(path, data, mode=FILE_MODE)
        write_json_atomic(_done_path(work_dir, spec.number), record)
    return record


def _flatten(record: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(recorded: dict, current: dict) -> list[str]:
    """What differs between two run records, as `key: recorded -> now`."""
    old, new = _flatten(recorded), _flatten(current)
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(old.keys() | new.keys())
            if old.get(key) != new.get(key)]


class WorkFolder:
    """The work folder of one output, locked for as long as this object is open."""

    def __init__(self, output: str):
        self.output, self.path = output, work_dir_for(output)
        self.record_path, self.final_path = os.path.join(self.path, "run.json"), os.path.join(self.path, "final.json")
        self._lock = None

    def __enter__(self) -> "WorkFolder":
        with os_errors_as(OutputError, f"create the work folder {self.path}"):
            os.makedirs(self.path, exist_ok=True)
            fd = hold_lock(os.path.join(self.path, "lock"))
        expect(fd is not None, OutputError,
               f"{self.path}: another classify run is writing {self.output}; wait for it to finish or stop it")
        self._lock = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def recorded(self) -> dict | None:
        if not os.path.isfile(self.record_path):
            return None
        return read_json(self.record_path, OutputError, "the record of an unfinished classify run")

    def done_records(self) -> list[dict]:
        if not os.path.isdir(self.path):
            return []
        names = sorted(n for n in os.listdir(self.path) if n.startswith("chunk-") and n.endswith(".json"))
        return [read_json(os.path.join(self.path, name), OutputError, "a done chunk's record") for name in names]

    def begin(self, identity: dict, restart: bool) -> int:
        """Start, or continue, the run `identity` describes; returns how many chunks an earlier run did."""
        recorded = self.recorded()
        if recorded is not None and recorded != identity and not restart:
            done = len(self.done_records())
            changed = "; ".join(differences(recorded, identity))
            raise UsageError(f"{self.path}: an unfinished run of {self.output} with other input, model or settings is "
                             f"here ({done} chunk(s) done); what changed: {changed}. Run the same command as before to "
                             "finish it, or add --restart to discard it and start over")
        if recorded != identity or restart:
            self._clear()
            write_json_atomic(self.record_path, identity)
        return len(self.done_records())

    def _clear(self) -> None:
        for name in os.listdir(self.path):
            if name != "lock":
                path = os.path.join(self.path, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)

    def pending(self, plan: ChunkPlan) -> tuple[list[ChunkSpec], list[str]]:
        """The chunks still to run, and warnings about shards found damaged (they are run again).
        A done chunk whose input bytes changed since is refused: its rows belong to other input."""
        done, warnings = {}, []
        for record in self.done_records():
            spec = plan.chunks[record["chunk"]] if 0 <= record.get("chunk", -1) < len(plan.chunks) else None
            expect(spec is not None and record.get("input_sha256") == spec.sha256, DataFormatError,
                   f"{plan.path}: lines {record.get('first_line')}-{record.get('first_line', 0) + record.get('lines', 0) - 1} "
                   f"differ from the input of the unfinished run in {self.path} (its size is the same); run the "
                   "original input, or add --restart to start over")
            shard = _shard_path(self.path, spec.number)
            if os.path.isfile(shard) and os.path.getsize(shard) == record["shard_bytes"] \
                    and file_sha256(shard) == record["shard_sha256"]:
                done[spec.number] = record
            else:
                warnings.append(f"{shard}: missing or not what its record says; chunk {spec.number} is run again")
                os.unlink(_done_path(self.path, spec.number))
        return [spec for spec in plan.chunks if spec.number not in done], warnings

    def publish(self, plan: ChunkPlan, with_sentence: bool, overwrite: bool) -> str:
        """Concatenate the header and every shard, in chunk order, and rename the result onto the
        output; returns its sha256."""
        digest = hashlib.sha256()
        with os_errors_as(OutputError, f"write {self.output}"), atomic_path(self.output, self.path, FILE_MODE) as tmp:
            with open(tmp, "wb") as out:
                for block in self._final_blocks(plan, with_sentence):
                    out.write(block)
                    digest.update(block)
            write_json_atomic(self.final_path, {"sha256": digest.hexdigest()})
            refuse_existing(self.output, overwrite)
        return digest.hexdigest()

    def _final_blocks(self, plan: ChunkPlan, with_sentence: bool):
        yield output_header(with_sentence).encode("utf-8")
        for spec in plan.chunks:
            with open(_shard_path(self.path, spec.number), "rb") as shard:
                yield from iter(lambda: shard.read(COPY_BLOCK), b"")

    def published(self) -> bool:
        """Whether the output is the file this run published (it was killed before removing this folder)."""
        if not (os.path.isfile(self.final_path) and os.path.isfile(self.output)):
            return False
        with contextlib.suppress(OutputError):
            return read_json(self.final_path, OutputError, "final.json").get("sha256") == file_sha256(self.output)
        return False

    def remove(self) -> None:
        """Rename, then delete: a kill while deleting leaves no half-emptied work folder (without its
        final.json, the next run could not tell the output was published)."""
        self.remove_leftovers()
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path, self._trash)
        shutil.rmtree(self._trash, ignore_errors=True)

    def remove_leftovers(self) -> None:
        """What a run killed while removing its work folder left."""
        shutil.rmtree(self._trash, ignore_errors=True)

    @property
    def _trash(self) -> str:
        return f"{self.path}.removing"


def refuse_existing(output: str, overwrite: bool) -> None:
    if os.path.exists(output) and not overwrite:
        raise OutputError(f"{output}: already exists; refusing to overwrite it (pass --overwrite to replace it, or "
                          "--output to write elsewhere)")
