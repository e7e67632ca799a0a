# Two commands set everything up on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Debian packages for the firmware targets: cross compiler, its C library, the emulator, clang.
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang

.PHONY: demo test bench toolchain clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# The CPU wheel first: any unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	# sktime is installed only for the UEA .ts files in its wheel; it is never imported.
	$(PIP) install -q --no-deps sktime==1.2.0
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

toolchain:
	@if command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null \
	    && command -v clang >/dev/null && [ -f /usr/lib/arm-none-eabi/newlib/libc.a -o -d /usr/lib/arm-none-eabi/newlib ]; then \
	  echo "toolchain: arm-none-eabi-gcc, qemu-system-arm and clang present"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

demo: $(STAMP)
	$(PY) -m edgegru demo

test: $(STAMP) toolchain
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m edgegru bench

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
