# Thin wrapper: the build lives in CMakeLists.txt, the tests in ctest, the benchmark in bench/.
BUILD     ?= build
SANITIZE  ?= 0
# UNITY=1 compiles the core and the unit tests a batch of files at a time (CMake's unity build):
# about half the build time, for a one-shot build like CI's; day-to-day rebuilds are quicker
# without it, one file at a time.
UNITY     ?= 0
JOBS      ?= $(shell nproc)
ifeq ($(SANITIZE),1)
BUILD     := build-asan
endif

.PHONY: all deps build run test bench install clean format fuzz

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTORII_SANITIZE=$(SANITIZE) -DTORII_WERROR=ON \
	  -DCMAKE_UNITY_BUILD=$(UNITY) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/torii -c conf/torii.toml

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600

# libFuzzer targets (t/fuzz/), built by clang in build-fuzz/, each run FUZZ_SECONDS seconds
# from its seed corpus; fails on a crash, leak or timeout and prints the reproducer.
# FUZZ_OPT=-O0 builds faster and fuzzes slower (CI's short run).
FUZZ_SECONDS ?= 60
FUZZ_OPT     ?= -O1
fuzz: deps
	@cmake -S . -B build-fuzz -DTORII_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 \
	  -DCMAKE_CXX_COMPILER=clang++-14 -DTORII_FUZZ_OPT=$(FUZZ_OPT) -DTORII_WERROR=ON -DCMAKE_UNITY_BUILD=$(UNITY) >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(JOBS) bash t/fuzz/run.sh

bench: build
	@bash bench/run.sh $(BENCH_ARGS)

# PREFIX (default /usr/local) is fixed at configure time: the pkg-config file, the default
# config and the systemd unit name installed paths. DESTDIR stages the tree for a package.
install: build
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(or $(PREFIX),/usr/local) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h' '*.c')

clean:
	rm -rf build build-asan build-fuzz
