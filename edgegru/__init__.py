"""EdgeGRU: a GRU from float training to a bit-exact full-integer model.

Data flow, one module per stage: data -> model -> train -> quantize -> golden -> export -> verify ->
stream / report.  The CLI (`edgegru.cli`) sits on top and holds no logic.
"""

__version__ = "0.1.0"
