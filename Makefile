# One command to set up and run the main job (`make demo`), one for the tests (`make test`).
# Both install what is missing: system tools with apt-get, Python packages in ./.venv.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.itexlab-installed
NATIVE := $(shell find native -type f)

.PHONY: setup demo test test-long lab clean system-deps

# System packages: the same list Binder installs (binder/apt.txt), plus what a venv and the
# browser test (Debian's chromium, driven by Playwright) need.
system-deps:
	@missing=""; \
	for pkg in $$(grep -v '^#' binder/apt.txt) python3-venv chromium; do \
		dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(PY): | system-deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The native extension is built by the package build (scikit-build-core + CMake + pybind11,
# against oneDNN 3.2 from the onednn-devel-cpu-gomp wheel), in an isolated build environment.
# Extras as in binder/requirements.txt (Binder installs `.[notebook]`), plus the test tools.
$(STAMP): $(PY) pyproject.toml binder/requirements.txt $(NATIVE)
	$(PY) -m pip install -q -e ".[notebook,test]"
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH binder/postBuild
	touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/itexlab demo --json out/results.json

test: setup
	$(PY) -m pytest -q

# The property-based tests with 1000 random examples each instead of 25 (a few minutes per ISA).
test-long: setup
	$(PY) -m pytest -q tests/test_differential.py tests/test_graphdef_fuzz.py --hypothesis-profile=long

# JupyterLab with the tutorials (notebooks/).
lab: setup
	$(VENV)/bin/jupyter lab notebooks --LabApp.extension_manager=readonly

clean:
	rm -rf build out $(STAMP)
