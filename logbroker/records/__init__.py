"""Kafka RecordBatch v2 codec: varints, CRC-32C, headers, compression.  No files, no sockets."""

from .batch import (
    CREATE_TIME,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    BatchHeader,
    IncompleteBatchError,
    Record,
    check_batch,
    decode_all,
    decode_records,
    encode_batch,
    encode_control_batch,
    iter_batches,
    read_header,
    validate_produced,
)
from .compression import CODEC_NAMES, GZIP, LZ4, NONE, SNAPPY, ZSTD, codec_from_name

__all__ = [
    "CREATE_TIME", "HEADER_SIZE", "LOG_APPEND_TIME", "BatchHeader", "IncompleteBatchError", "Record",
    "check_batch", "decode_all", "decode_records", "encode_batch", "encode_control_batch", "iter_batches",
    "read_header", "validate_produced", "CODEC_NAMES", "GZIP", "LZ4", "NONE", "SNAPPY", "ZSTD",
    "codec_from_name",
]
