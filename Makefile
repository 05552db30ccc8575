# wspush — `make run` builds and starts the server (flags in ARGS='…'); `make test` is what CI checks.
GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME      ?= 10s
SOAK_DURATION ?= 10m
BIN           := bin

.PHONY: all build run test fmt fmt-check tidy-check vet staticcheck unit fuzz bench bench-full bench-1m bench-cluster bench-bcast1m bench-report bench-go soak clean

all: build

build:
	$(GO) build -o $(BIN)/wspush ./server
	@if [ -d loadgen ]; then $(GO) build -o $(BIN)/wsload ./loadgen; fi
	@if [ -d bench ] && ls bench/*.go >/dev/null 2>&1; then $(GO) build -o $(BIN)/wsbench ./bench; fi

# make run ARGS='-push-interval 1s': ARGS are wspush's flags. Topic state is kept
# across runs in STATE_DIR (-state-dir); STATE_DIR= turns that off (needed with -nats).
STATE_DIR     ?= .wspush-state
run: build
	@if [ -n "$(STATE_DIR)" ]; then mkdir -p $(STATE_DIR); fi
	./$(BIN)/wspush -state-dir=$(STATE_DIR) $(ARGS)

test: fmt-check tidy-check vet staticcheck unit fuzz

fmt:
	gofmt -w server loadgen bench 2>/dev/null || gofmt -w server

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# go.mod and go.sum are exactly what the imports need (prints the diff if not).
tidy-check:
	$(GO) mod tidy -diff

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 -timeout 10m ./...

# Short fuzz runs of every fuzz target (go test runs one target at a time).
# Go 1.26's fuzz coordinator can fail a run with a bare "context deadline
# exceeded" as -fuzztime ends, without any failing input (golang/go#75804,
# fixed in Go 1.27): such a run is repeated once. A failing input, or any
# other failure, fails at once.
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    for try in 1 2; do \
	      echo "fuzz $$pkg $$t"; \
	      if $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then cat $$log; break; fi; \
	      cat $$log; \
	      if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
	        echo "fuzz: $$t: Go's fuzz-coordinator deadline race (golang/go#75804), no failing input; once more"; continue; fi; \
	      exit 1; \
	    done; \
	  done; \
	done

# wspush side by side with its peers (docs/benchmarks.md).
bench: build            ## ticks at 5k connections, every target, ≤ 5 min
	./$(BIN)/wsbench -quick
bench-full: build       ## ticks, idle, broadcast, connect at 19k, 2 rounds (~20 min)
	./$(BIN)/wsbench -full
bench-1m: build         ## 1,000,000 connections to 60 wspush processes (~8 min, ≥ 16 GiB free)
	./$(BIN)/wsbench onemillion
bench-cluster: build    ## one publish at a time to 1,000,000 clients over 60 wspush nodes joined by NATS (~8 min, ≥ 16 GiB free)
	./$(BIN)/wsbench cluster
bench-bcast1m: build    ## one broadcast at a time to 1,000,000 clients: floor, wspush, wspush over NATS, 60 processes each (3 × ~7 min, ≥ 16 GiB free)
	for t in floor wspush wspush-nats; do ./$(BIN)/wsbench bcast1m -target $$t -no-build || exit 1; done
bench-report: build     ## re-render docs/benchmarks.md and docs/img/bench-*.png from bench/results
	./$(BIN)/wsbench report -o docs/benchmarks.md
bench-go:               ## Go microbenchmarks of the server (wheel, tick path, fan-out)
	$(GO) test -run '^$$' -bench . -benchmem ./server/...

# Long soak: TestSoak (60 s inside `make test`) run for SOAK_DURATION.
soak:
	WSPUSH_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -run '^TestSoak$$' -timeout 2h -v ./server/

clean:
	rm -rf $(BIN)
