"""Exception types for expected mistakes: the CLI prints them without a traceback and exits 2."""


class PipelineError(Exception):
    """Base class: a user-facing problem with a message that says what was expected."""

    exit_code = 2


class UsageError(PipelineError):
    """A command-line value is out of range (batch size, opset, ...)."""


class DataFormatError(PipelineError):
    """An input TSV is missing, empty or malformed."""


class ManifestError(PipelineError):
    """Feature files on disk do not match their manifest."""


class CheckpointError(PipelineError):
    """A checkpoint folder is incomplete, corrupted or has weights of the wrong shape."""


class ExportError(PipelineError):
    """ONNX export, simplification or the numerical check against PyTorch failed."""


class ModelFileError(PipelineError):
    """An ONNX/OM model file is missing or does not fit the request."""


class ResultFolderError(PipelineError):
    """A result folder is missing outputs, has extra ones, or has malformed ones."""


class OutputError(PipelineError):
    """A file or folder could not be written: disk full, permission denied, a file in the way, or
    a name that would overwrite earlier results."""


class BackendUnavailableError(PipelineError):
    """The requested inference backend (ais_bench, a GPU stack, ...) is not installed here."""

    exit_code = 3


def expect(condition: bool, error_type: type, message: str) -> None:
    """Raise `error_type(message)` unless `condition` holds."""
    if not condition:
        raise error_type(message)


class NonFiniteOutputError(ResultFolderError):
    """A result folder holds NaN or infinite logits (e.g. an fp16 overflow) that would be scored as a class."""


class ThresholdExceededError(PipelineError):
    """A comparison ran, but a limit asked for on the command line (a CI gate) was exceeded."""

    exit_code = 1


class InvalidResultError(PipelineError):
    """LoadGen judged a run INVALID (a latency bound, min duration, min queries or early stopping not met): its
    reasons are printed and no figure is given."""

    exit_code = 1
class ServeRequestError(PipelineError):
    """A request the server refuses: TEI's error type (Empty, Validation, Tokenizer, Overloaded, Backend, Unhealthy)
    and its HTTP status travel with the message."""

    STATUS = {"Empty": 400, "Validation": 413, "Tokenizer": 422, "Overloaded": 429, "Backend": 424, "Unhealthy": 503}

    def __init__(self, error_type: str, message: str, status: int | None = None):
        super().__init__(message)
        self.error_type, self.status = error_type, status or self.STATUS[error_type]
