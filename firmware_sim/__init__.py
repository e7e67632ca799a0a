"""Portable C for microcontrollers generated from the quantized artifact (`codegen`), built and run on
the host and emulated cores (`device`)."""
