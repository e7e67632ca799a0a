# Two commands set everything up on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Debian packages for the firmware targets: cross compiler, its C library, the emulator, clang.
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang

.PHONY: demo test bench toolchain toolchain-if-possible clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# The CPU wheel first: any unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

# The Cortex-M toolchain and emulator from Debian's packages (needs root or sudo, and apt).
toolchain:
	@if command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null \
	    && command -v clang >/dev/null && [ -d /usr/lib/arm-none-eabi/newlib ]; then \
	  echo "toolchain: arm-none-eabi-gcc, qemu-system-arm and clang present"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo $(SUDO_FLAGS) ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

# The demo tries the same, but a machine without root or apt still runs every other stage.
toolchain-if-possible:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) toolchain SUDO_FLAGS=-n \
	  || echo "toolchain: could not install $(APT_PACKAGES) (no root or no apt); the demo skips the Cortex-M backends"

demo: $(STAMP) toolchain-if-possible
	$(PY) -m edgegru demo

test: $(STAMP) toolchain
	$(PY) -m pytest -q

# Every benchmark that exists, on the demo's run (the demo reuses what it finished before).
bench: demo
	$(PY) -m edgegru bench

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
