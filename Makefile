# Two commands set everything up on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Debian packages, in three groups installed one apt call each, so that a Debian lacking one group's
# package still gets the others: the firmware targets (cross compiler, its C library, the emulator,
# clang); the headless Chromium the report's browser test drives through Playwright; the speech
# synthesizers (espeak-ng, flite) and one real speaker's digits (asterisk-core-sounds-en-wav) that
# synth-kws is made of.  Each group is skipped when what it provides is present.
FIRMWARE_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang
BROWSER_PACKAGES := chromium-headless-shell
SPEECH_PACKAGES := espeak-ng flite asterisk-core-sounds-en-wav
FIRMWARE_PRESENT := command -v arm-none-eabi-gcc && command -v qemu-system-arm && command -v clang \
  && [ -d /usr/lib/arm-none-eabi/newlib ]
BROWSER_PRESENT := command -v chromium-headless-shell
SPEECH_PRESENT := command -v espeak-ng && command -v flite \
  && [ -f /usr/share/asterisk/sounds/en_US_f_Allison/digits/0.wav ]
APT_INSTALL = SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo $(SUDO_FLAGS) ); \
  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends

.PHONY: demo test bench toolchain toolchain-firmware toolchain-browser toolchain-speech toolchain-if-possible litert-arm64 cmsis-dsp cmsis-dsp-if-possible clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# The CPU wheel first: any unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

# The Debian packages (needs root or sudo, and apt).
toolchain: toolchain-firmware toolchain-browser toolchain-speech

toolchain-firmware:
	@if ($(FIRMWARE_PRESENT)) >/dev/null; then echo "toolchain: the Cortex-M cross compiler, QEMU and clang present"; \
	else $(APT_INSTALL) $(FIRMWARE_PACKAGES); fi

toolchain-browser:
	@if ($(BROWSER_PRESENT)) >/dev/null; then echo "toolchain: chromium-headless-shell present"; \
	else $(APT_INSTALL) $(BROWSER_PACKAGES); fi

toolchain-speech:
	@if ($(SPEECH_PRESENT)) >/dev/null; then echo "toolchain: espeak-ng, flite and the Allison digits present"; \
	else $(APT_INSTALL) $(SPEECH_PACKAGES); fi

# LiteRT's Arm build for the litert-arm64 backend, run by QEMU user mode: an arm64 Debian Python extracted
# into .arm64/ (no chroot: QEMU reads its files through -L), numpy and ai-edge-litert's aarch64 wheels
# into .arm64/site, and the /proc/cpuinfo of a Neoverse N1 (QEMU 7.2 would show the host's, and
# XNNPACK would crash reading it), the core QEMU emulates for it (export/tflite_runtimes.ARM64_CPU).
ARM64 := .arm64
ARM64_CPUINFO := processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n
litert-arm64:
	@if [ -d $(ARM64)/site/ai_edge_litert ] && command -v qemu-aarch64-static >/dev/null; then \
	  echo "litert-arm64: $(ARM64) present"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends qemu-user-static mmdebstrap \
	  && rm -rf $(ARM64).new \
	  && mmdebstrap -q --variant=extract --arch=arm64 --include=python3,python3-pip,libpython3.11,libstdc++6,libgcc-s1 bookworm $(ARM64).new \
	  && mkdir -p $(ARM64).new/proc $(ARM64).new/sys/devices/system/cpu \
	  && printf '$(ARM64_CPUINFO)' > $(ARM64).new/proc/cpuinfo \
	  && echo 0 > $(ARM64).new/sys/devices/system/cpu/possible && echo 0 > $(ARM64).new/sys/devices/system/cpu/present \
	  && qemu-aarch64-static -cpu neoverse-n1 -L $(ARM64).new $(ARM64).new/usr/bin/python3 -m pip install -q --no-cache-dir \
	       --break-system-packages --only-binary :all: --target $(ARM64).new/site numpy==1.26.4 ai-edge-litert==2.3.0 \
	  && rm -rf $(ARM64) && mv $(ARM64).new $(ARM64); \
	fi

# CMSIS-DSP's C sources for the keyword-spotting front end in firmware (firmware_sim/frontend): the same
# release as the cmsisdsp Python package that is the front end's reference, from its source distribution
# on PyPI (checked against its SHA-256), into .cmsis-dsp/ (Include, PrivateInclude, Source, LICENSE).
CMSIS_DSP := .cmsis-dsp
CMSIS_DSP_VERSION := 1.10.3
CMSIS_DSP_SHA256 := 307d32298faa7c58db912851027fce35f886fec7eb1a27c4b309ce1a97f47519
cmsis-dsp: $(STAMP)
	@if [ -f $(CMSIS_DSP)/Include/arm_math.h ] && [ -d $(CMSIS_DSP)/Source/TransformFunctions ]; then \
	  echo "cmsis-dsp: $(CMSIS_DSP) present"; \
	else \
	  rm -rf $(CMSIS_DSP).new && mkdir -p $(CMSIS_DSP).new \
	  && $(PIP) download -q --no-deps --no-binary cmsisdsp cmsisdsp==$(CMSIS_DSP_VERSION) -d $(CMSIS_DSP).new \
	  && echo "$(CMSIS_DSP_SHA256)  $(CMSIS_DSP).new/cmsisdsp-$(CMSIS_DSP_VERSION).tar.gz" | sha256sum -c --quiet \
	  && tar xzf $(CMSIS_DSP).new/cmsisdsp-$(CMSIS_DSP_VERSION).tar.gz -C $(CMSIS_DSP).new --strip-components=1 \
	       cmsisdsp-$(CMSIS_DSP_VERSION)/Include cmsisdsp-$(CMSIS_DSP_VERSION)/PrivateInclude \
	       cmsisdsp-$(CMSIS_DSP_VERSION)/Source cmsisdsp-$(CMSIS_DSP_VERSION)/LICENSE \
	  && rm $(CMSIS_DSP).new/cmsisdsp-$(CMSIS_DSP_VERSION).tar.gz \
	  && rm -rf $(CMSIS_DSP) && mv $(CMSIS_DSP).new $(CMSIS_DSP); \
	fi

# The demo tries the same, but a machine without network still runs every other stage.
cmsis-dsp-if-possible:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) cmsis-dsp \
	  || echo "cmsis-dsp: could not download cmsisdsp==$(CMSIS_DSP_VERSION)'s sources; the demo skips the firmware front end"

# The demo tries the same, group by group, but a machine without root or apt still runs every other stage.
toolchain-if-possible:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) toolchain-firmware SUDO_FLAGS=-n \
	  || echo "toolchain: could not install $(FIRMWARE_PACKAGES) (no root or no apt); the demo skips the Cortex-M backends"
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) toolchain-browser SUDO_FLAGS=-n \
	  || echo "toolchain: could not install $(BROWSER_PACKAGES); only the report's browser test needs it"
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) toolchain-speech SUDO_FLAGS=-n \
	  || echo "toolchain: could not install $(SPEECH_PACKAGES); only the synth-kws datasets need them"

demo: $(STAMP) toolchain-if-possible cmsis-dsp-if-possible
	$(PY) -m edgegru demo

# Two workers, a test file each, one torch thread each (the CI machine has 2 cores): 4.5 min instead of 7.5.
test: $(STAMP) toolchain litert-arm64 cmsis-dsp
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile

# Every benchmark that exists, on the demo's run (the demo reuses what it finished before).
bench: demo
	$(PY) -m edgegru bench

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis $(ARM64) $(CMSIS_DSP) $(CMSIS_DSP).new
