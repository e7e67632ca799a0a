"""The keyword-spotting front end in firmware: CMSIS-DSP's q15 MFCC built from its sources with our glue
(`c/`), for the host and the emulated Cortex-M targets (`mfcc_firmware`)."""
