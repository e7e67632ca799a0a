"""Runs a .tflite in LiteRT (default kernels: XNNPACK) for a parent process, one invoke per request.

Standalone (numpy and ai_edge_litert only): the `litert-arm64` backend runs it with an arm64 Python
under QEMU user mode (`export.tflite_runtimes`).  Protocol on stdin/stdout, little-endian:
  parent: model size (uint64) and the model bytes
  child:  one line of JSON, {"inputs": [[name, shape, dtype]...], "outputs": [...]} (graph order)
  then per invoke: the parent writes every input's raw bytes in that order, the child answers with
  every output's raw bytes.  An error ends the child, its reason on stderr; a closed stdin ends it.
"""

import json
import struct
import sys

import numpy as np
from ai_edge_litert import interpreter


def read_exactly(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        sys.exit(0)  # the parent closed the pipe: done
    return data


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    (size,) = struct.unpack("<Q", read_exactly(stdin, 8))
    model = interpreter.Interpreter(model_content=read_exactly(stdin, size), num_threads=1)
    model.allocate_tensors()
    inputs, outputs = model.get_input_details(), model.get_output_details()
    describe = [[[d["name"], [int(n) for n in d["shape"]], np.dtype(d["dtype"]).name] for d in details]
                for details in (inputs, outputs)]
    stdout.write((json.dumps({"inputs": describe[0], "outputs": describe[1]}) + "\n").encode())
    stdout.flush()
    sizes = [int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in inputs]
    while True:
        for d, nbytes in zip(inputs, sizes):
            array = np.frombuffer(read_exactly(stdin, nbytes), dtype=d["dtype"]).reshape(d["shape"])
            model.set_tensor(d["index"], array)
        model.invoke()
        stdout.write(b"".join(np.ascontiguousarray(model.get_tensor(d["index"])).tobytes() for d in outputs))
        stdout.flush()


if __name__ == "__main__":
    main()
