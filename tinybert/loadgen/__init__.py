"""Latency under a deadline, measured the field's way: MLPerf LoadGen's four scenarios over the model the settings
prepare (`tinybert.api`), its logs read back as LoadGen states them (VALID or INVALID, with its reasons)."""
