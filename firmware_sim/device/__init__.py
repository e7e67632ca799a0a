"""Building and running C programs on targets: the host and emulated Cortex-M cores (`targets`), the
build (`build`), running with a timeout or interactively (`execute`), fault kinds, exact instruction
counts (`icount`) and flash/RAM sizes.  Nothing here knows the generated model (`firmware_sim.codegen`)."""
