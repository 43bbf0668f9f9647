# Thin wrapper: the build lives in CMakeLists.txt, the tests in ctest, the benchmark in bench/.
BUILD     ?= build
SANITIZE  ?= 0
JOBS      ?= $(shell nproc)
ifeq ($(SANITIZE),1)
BUILD     := build-asan
endif

.PHONY: all deps build run test bench install clean format

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTORII_SANITIZE=$(SANITIZE) -DTORII_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/torii -c conf/torii.toml

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600

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
	rm -rf build build-asan
