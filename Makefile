# isle — build, test, demo and benchmark targets. `make test` is what CI runs.
GO      ?= go
BIN     := bin/isle
PKGS    := ./...
DEBS    := iproute2 iputils-ping iperf3 nftables tcpdump tshark python3-scapy python3-cryptography \
           strongswan-charon strongswan-swanctl libcharon-extra-plugins \
           libstrongswan-standard-plugins libstrongswan-extra-plugins wireguard-tools

.PHONY: all build test unit deps demo bench fuzz vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/isle

# deps installs the Debian packages the tests use; it does nothing when they are present.
deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(GO) mod download

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet $(PKGS)

# test runs everything CI runs: unit, known-answer, oracle and namespace tests.
test: deps vet build
	$(GO) test -count=1 -timeout 12m $(PKGS)

unit:
	$(GO) test -short $(PKGS)

fuzz:
	./scripts/fuzz.sh 10s

demo: deps build
	./scripts/demo.sh

bench: deps build
	./scripts/bench.sh

clean:
	rm -rf bin
