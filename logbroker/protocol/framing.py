"""Splitting a TCP byte stream into frames (PROTOCOL.md §1).

Every request is ``INT32 size`` then ``size`` bytes.  ``FrameDecoder.feed(data)`` takes whatever the
socket delivered -- a byte, half a frame, ten frames -- and returns the frames now complete, without
their length prefix, in order.  A negative size, or one above ``max_frame_bytes`` (Kafka's
``socket.request.max.bytes``, 100 MiB), raises ``ProtocolError`` before anything is buffered for it:
the server closes that connection.  After such an error the decoder stays broken and every later
``feed`` raises again.

Cost: the buffer is a ``bytearray``; completed frames are sliced off its front, which CPython does in
O(1) amortized time, and an incomplete frame is not rescanned, only its length compared, so feeding a
large frame one byte at a time stays linear.
"""

from __future__ import annotations

from .errors import ProtocolError

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "FrameDecoder"]

DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024


class FrameDecoder:
    """Length-prefixed frames out of a byte stream."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._need = -1  # size of the frame being collected, -1 while its prefix is incomplete
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)

    def feed(self, data) -> list[bytes]:
        """Add ``data``; return every frame it completed (possibly none)."""
        if self._error is not None:
            raise ProtocolError(f"stream already failed: {self._error}")
        buf = self._buf
        buf += data
        frames = []
        while True:
            if self._need < 0:
                if len(buf) < 4:
                    return frames
                size = int.from_bytes(buf[:4], "big", signed=True)
                if size < 0 or size > self.max_frame_bytes:
                    self._error = ProtocolError(
                        f"frame length {size} is negative" if size < 0
                        else f"frame length {size} exceeds the limit of {self.max_frame_bytes} bytes")
                    buf.clear()
                    raise self._error
                del buf[:4]
                self._need = size
            if len(buf) < self._need:
                return frames
            with memoryview(buf) as view, view[:self._need] as frame:
                frames.append(bytes(frame))  # one copy (slicing the bytearray itself would make two)
            del buf[:self._need]
            self._need = -1
