# The two commands of README.md. Each installs what is missing, configures, builds and runs.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: demo test deps configure build bench clean sanitize

demo: build
	scripts/demo $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 900

deps:
	scripts/install-deps

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# Runs every benchmark once and rewrites the generated part of docs/PERFORMANCE.md.
bench: build
	$(BUILD)/bench/coffre-bench --benchmark_out=$(BUILD)/bench.json --benchmark_out_format=json
	scripts/bench-report $(BUILD)/bench.json docs/PERFORMANCE.md

# AddressSanitizer + UndefinedBehaviorSanitizer build and tests, in its own folder.
sanitize:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DCOFFRE_SANITIZE=ON -DCOFFRE_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo"

clean:
	rm -rf $(BUILD) build-asan
