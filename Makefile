# isle — build, test, demo and benchmark targets. `make test` is what CI runs (as root, CI=true).
GO       ?= go
BIN      := bin/isle
PKGS     := ./...
FUZZTIME ?= 10s
# Each test binary's limit. The packages together stay well under 15 minutes
# (namespace tests are the slow part); -p 2 runs two packages at a time on
# the 2 cores, which is safe because every namespace test has its own prefix.
TESTFLAGS ?= -count=1 -p 2 -timeout 10m

# Debian 12 packages the tests, the demo and the benchmark use:
#   iproute2 iputils-ping nftables   namespaces, veth, routes, ping, NAT and loss
#   tcpdump tshark                   captures, and decoding them
#   python3-scapy python3-cryptography   the independent ESP/AH oracle (scapy needs cryptography for ESP)
#   strongswan-charon strongswan-swanctl libcharon-extra-plugins (kernel-libipsec)
#   libstrongswan-standard-plugins libstrongswan-extra-plugins   the real IKEv2/ESP peer
#   iperf3 wireguard-tools           benchmark and its comparator
#   ca-certificates                  `go mod download` over HTTPS
DEBS := iproute2 iputils-ping nftables tcpdump tshark python3-scapy python3-cryptography \
        strongswan-charon strongswan-swanctl libcharon-extra-plugins \
        libstrongswan-standard-plugins libstrongswan-extra-plugins \
        iperf3 wireguard-tools ca-certificates

.PHONY: all build test unit deps vet demo bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/isle

# deps installs what is missing (nothing when all is there) and makes sure no
# strongSwan service runs on the host: tests start their own charons, each in
# its own namespace.
deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make deps: not root, not installing Debian packages"; else \
	missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get -o DPkg::Lock::Timeout=300 update -qq && \
		apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi; \
	if [ -d /run/systemd/system ]; then \
		for s in strongswan-starter.service strongswan.service ipsec.service; do \
			if systemctl is-enabled --quiet $$s 2>/dev/null || systemctl is-active --quiet $$s 2>/dev/null; then \
				echo "stopping and disabling $$s"; systemctl disable --now $$s; fi; \
		done; \
	fi; fi
	$(GO) mod download

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# test runs everything CI runs: unit, known-answer, oracle and namespace tests.
test: deps vet build
	$(GO) test $(TESTFLAGS) $(PKGS)

# unit leaves out what needs root and namespaces (-short); no installs.
unit:
	$(GO) test -short -count=1 $(PKGS)

fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

demo: deps build
	./scripts/demo.sh

# bench: Go microbenchmarks (seal/open per algorithm, allocs/op), then the
# end-to-end table on the namespace lab.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	./scripts/bench.sh

clean:
	rm -rf bin
