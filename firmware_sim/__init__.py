"""Portable C for microcontrollers generated from the quantized artifact, built and run on emulated cores."""
