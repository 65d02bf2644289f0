"""Storage: the only package that writes files.  Segments, partition logs, the data directory."""

from .log import AppendInfo, PartitionLog, ReadInfo, RecoveryReport
from .log_manager import LogManager, TopicMetadata

__all__ = ["AppendInfo", "PartitionLog", "ReadInfo", "RecoveryReport", "LogManager", "TopicMetadata"]
