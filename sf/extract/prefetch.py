"""Run the device decode one batch ahead, on a thread and its own CUDA stream.

On an H200 the main process decoded (nvJPEG: Huffman on the CPU, the rest on the GPU) and ran the backbone in
turn, so pooled-only extraction ran at the rate of both added up (docs/benchmarks.md, `bench/stages.py`).
torch releases the GIL inside its ops, so a thread that decodes batch k+1 while the main thread queues pass k
overlaps the two. Order is kept (one producer), at most `depth` decoded batches wait (bounded device memory),
and an error on the thread is raised in the consumer where the batch would have been.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import torch

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def ahead(batches: Iterable, work: Callable[[dict], dict], device: torch.device, depth: int = 2) -> Iterator[dict]:
    """`work(b)` for each b of `batches`, computed on a background thread, yielded in order."""
    side = torch.cuda.Stream(device) if device.type == "cuda" else None
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for b in batches:
                if side is None:
                    done = work(b)
                    event = None
                else:
                    with torch.cuda.stream(side):
                        done = work(b)
                        event = torch.cuda.Event()
                        event.record(side)
                if not put((done, event)):
                    return
            put(_DONE)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            put(_Failed(e))

    thread = threading.Thread(target=produce, name="sf-decode-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            done, event = item
            if event is not None:
                # The consumer's stream waits for the decode, and the allocator must not hand the decoded
                # images' memory to the side stream again before the consumer's kernels have read them.
                current = torch.cuda.current_stream(device)
                current.wait_event(event)
                if done.get("images") is not None:
                    done["images"].record_stream(current)
            yield done
    finally:
        stop.set()
        thread.join(timeout=5)
