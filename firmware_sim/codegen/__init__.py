"""C generation: the C99 source of a quantized model's step, its kernel library (`c/`), and the stream
harness and record format that run it (`harness`).  Nothing here builds or runs a program
(`firmware_sim.device` does)."""
