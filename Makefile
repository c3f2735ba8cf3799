# One command to set up and run the main job (`make demo`), one for the tests (`make test`).
# Both install what is missing: system tools with apt-get, Python packages in ./.venv.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.itexlab-installed
NATIVE := $(shell find native -type f)

.PHONY: setup demo test clean system-deps

system-deps:
	@missing=""; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	python3 -c "import venv, ensurepip" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(PY): | system-deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The native extension is built by the package build (scikit-build-core + CMake + pybind11,
# against oneDNN 3.2 from the onednn-devel-cpu-gomp wheel), in an isolated build environment.
$(STAMP): $(PY) pyproject.toml $(NATIVE)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/itexlab demo --json out/results.json

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf build out $(STAMP)
