GO ?= go
BIN := bin/replfs
# Integration tests mount FUSE; -p 1 keeps mounts of different packages apart.
TESTFLAGS ?= -count=1 -timeout 30m
# A count, not a duration: a duration-based -fuzztime can fail with a spurious
# "context deadline exceeded" in Go 1.26 (go.dev/issue/75804).
FUZZTIME ?= 300000x

.PHONY: build test unit integration fuzz bench demo demo-stop lint clean

build:
	$(GO) build -o $(BIN) ./cmd/replfs

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v /integration)

integration: build
	$(GO) test $(TESTFLAGS) -p 1 ./integration/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./journal/

# Everything CI checks: lint, unit tests, a short fuzz run, FUSE integration tests.
test: lint unit fuzz integration

bench: build
	$(GO) run ./integration/bench -replfs $(BIN)
	$(GO) run ./integration/replbench -replfs $(BIN)

DEMO := $(CURDIR)/demo
demo: build
	@./scripts/demo.sh $(BIN) $(DEMO)

demo-stop:
	-@$(BIN) umount $(DEMO)/mnt

clean:
	rm -rf bin
