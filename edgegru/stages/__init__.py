"""The run-level stages: what each `edgegru` command does to a run directory `runs/NAME/`.

One layer on top of the libraries: `train_stage`, `quantize_stage`, `export_stage`, `verify_stage`,
`firmware_stage`, `bench_stage`, `sweep_stage`, `report_stage` and `demo_stage` read and write the files of a run
(`run_layout` names them) and call the core (`edgegru.*`), the exporters (`export`) and the C
generator and device runner (`firmware_sim`).  Nothing below imports this package; the CLI imports
only this package.
"""
