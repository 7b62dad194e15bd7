# equivariance: set-up, tests, demo and benchmarks.
#   make demo   installs what is missing, then runs the main job from R
#   make test   installs what is missing, then runs pytest and R CMD check
#   make bench  runs the scripts in bench/
# Every target installs what it needs and reuses what a previous run installed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# The same virtualenv install_equivariance() creates: reticulate's default root.
VENV_ROOT ?= $(or $(RETICULATE_VIRTUALENV_ROOT),$(WORKON_HOME),$(HOME)/.virtualenvs)
VENV      ?= $(VENV_ROOT)/r-equivariance
PY        := $(VENV)/bin/python
REQS      := requirements-dev.txt inst/python/requirements.txt
PYTHON3   ?= python3

DEB_PACKAGES := r-base-core r-cran-reticulate r-cran-cli r-cran-testthat r-cran-knitr r-cran-png \
                r-cran-rmarkdown r-cran-pkgdown pandoc gfortran dataset-fashion-mnist \
                libjs-mathjax chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Any R test that needs Python fails instead of skipping (see tests/testthat/helper-python.R).
export EQUIVARIANCE_REQUIRE_PYTHON := true

PKG_VERSION := $(shell sed -n 's/^Version: //p' DESCRIPTION)
TARBALL     := equivariance_$(PKG_VERSION).tar.gz
STAMP       := $(VENV)/.equivariance-requirements

.PHONY: all setup system-deps python-env r-install lint pytest rcheck site site-check test demo bench clean

all: test

setup: system-deps python-env r-install

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

python-env: $(STAMP)

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	cat $(REQS) > $(STAMP)

# The built package (with its vignettes), made once for both installing and checking.
PKG_SOURCES := DESCRIPTION NAMESPACE $(shell find R man inst vignettes -type f \
                 -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null)

$(TARBALL): $(PKG_SOURCES) | system-deps python-env
	R CMD build . >/dev/null

# Installed from the built tarball, so that vignette() finds the vignettes.
r-install: $(TARBALL)
	R CMD INSTALL --no-test-load $(TARBALL) >/dev/null
	@Rscript -e 'v <- vignette(package = "equivariance")$$results; if (nrow(v) < 4) stop("the installed package lists ", nrow(v), " vignettes")'

lint: python-env
	$(PY) -m ruff check inst/python tests/python bench tools

pytest: python-env
	$(PY) -m pytest -q tests/python

rcheck: $(TARBALL)
	rm -rf equivariance.Rcheck
	R CMD check --no-manual $(TARBALL) 2>&1 | tee .rcheck.log
	@grep -q '^Status: ' .rcheck.log || { echo "R CMD check did not finish"; exit 1; }
	@if grep -E '^Status: .*(ERROR|WARNING)' .rcheck.log; then echo "R CMD check failed"; exit 1; fi
	@out=equivariance.Rcheck/tests/testthat.Rout; \
	 grep -E '\[ FAIL [0-9]+ \| WARN [0-9]+ \| SKIP [0-9]+ \| PASS [0-9]+ \]' $$out | tail -n 1; \
	 grep -qE '\[ FAIL 0 \| WARN [0-9]+ \| SKIP 0 \| PASS [1-9][0-9]* \]' $$out \
	   || { echo "R tests failed, were skipped or did not run"; exit 1; }

# The documentation site (pkgdown) in docs/, self-contained so that it works offline:
# pkgdown/ holds the scripts pkgdown would load from CDNs; MathJax comes from Debian.
site: r-install
	rm -rf docs
	Rscript -e 'options(pkgdown.internet = FALSE); pkgdown::build_site(preview = FALSE, install = FALSE, new_process = FALSE)'
	cp -rL /usr/share/javascript/mathjax docs/mathjax

site-check: site
	$(PY) tools/check_site.py docs

test: setup lint pytest rcheck site-check

demo: setup
	Rscript demo/main.R

bench: setup
	$(PY) -m pip install --quiet --no-deps equivariance-regularizer==0.1.1
	@for f in bench/[!_]*.py; do echo "== $$f"; $(PY) $$f; done
	@for f in bench/*.R; do [ -e "$$f" ] || continue; echo "== $$f"; Rscript $$f; done

clean:
	rm -rf equivariance.Rcheck $(TARBALL) .rcheck.log .pytest_cache
