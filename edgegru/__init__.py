"""EdgeGRU: a GRU from float training to a bit-exact full-integer model.

Data flow, one module per job: data -> model -> train -> quantize -> golden -> export -> verify ->
firmware, every step-by-step run through one loop (`stream_loop`).  The run-level stages
(`edgegru.stages`) sit on top of them and the CLI (`edgegru.cli`) on top of the stages; it only
parses and prints.
"""

__version__ = "0.1.0"
