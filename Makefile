# Build and install gfs2-fencing.
#   make                       release build of the installed programs: static executables that run on
#                              RHEL 8 and later (checked by packaging/check-static.sh); the agent is
#                              built for musl (needs `rustup target add x86_64-unknown-linux-musl`)
#   make install DESTDIR=… PREFIX=/usr
#   make rpm                   binary RPM from a staged install (needs rpmbuild)
#   make bench                 the benchmark (docs/maintainers/BENCHMARKS.md) on exactly these binaries
PREFIX      ?= /usr
SYSCONFDIR  ?= /etc
DESTDIR     ?=
CARGO       ?= cargo
TARGET      ?= x86_64-unknown-linux-gnu
RELEASE     ?= target/$(TARGET)/release
AGENT_TARGET  ?= x86_64-unknown-linux-musl
AGENT_RELEASE ?= target/$(AGENT_TARGET)/release
SBINDIR      = $(PREFIX)/sbin
BINDIR       = $(PREFIX)/bin
LIBEXECDIR   = $(PREFIX)/libexec/gfs2-fencing
UNITDIR      = $(PREFIX)/lib/systemd/system
TMPFILESDIR  = $(PREFIX)/lib/tmpfiles.d
MANDIR       = $(PREFIX)/share/man/man8
DOCDIR       = $(PREFIX)/share/doc/gfs2-fencing
# What the programs and operators use (rules, dashboard, example configurations): outside the doc
# directory, which an install without documentation (rpm --nodocs, dnf's tsflags=nodocs) leaves out.
DATADIR      = $(PREFIX)/share/gfs2-fencing
MAN          = target/man
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

.PHONY: all build man install rpm bench

all: build

# Statically linked (glibc's libc.a): nothing to resolve at start and no dependence on the rabbit's
# glibc version. An explicit --target keeps the flag off build scripts and proc-macros. The agent,
# started for every fence and every monitor, is built for musl (static by default): a glibc program
# detects the CPU and its caches at every start, which on a virtual machine is most of the start
# (half a millisecond of each fence; docs/maintainers/BENCHMARKS.md). The watcher, which starts
# once, and the audit tools keep glibc.
STATIC = CARGO_TARGET_$(shell echo $(TARGET) | tr a-z- A-Z_)_RUSTFLAGS="-C target-feature=+crt-static"

build:
	$(STATIC) $(CARGO) build --release --target $(TARGET) -p audit-tools -p watcher --bins
	$(CARGO) build --release --target $(AGENT_TARGET) -p agent --bins

# The benchmark's programs as shipped (what build builds, the agent from its musl build) and the
# harness beside them, in one directory.
bench: build
	$(STATIC) $(CARGO) build --release --target $(TARGET) --workspace --bins
	rm -rf target/bench-bin && mkdir -p target/bench-bin
	cp $(RELEASE)/gfs2-fence-watcher $(RELEASE)/gfs2-fence-test-executor $(RELEASE)/nnf-sos-standin \
		$(AGENT_RELEASE)/fence_gfs2_recorder target/bench-bin/
	scripts/bench.sh $(RELEASE)/fence-bench --bin-dir target/bench-bin $(BENCH_ARGS)

# Binaries built elsewhere (RELEASE=…, AGENT_RELEASE=… for the agent) are installed as they are; the
# default ones are built first.
ifeq ($(RELEASE),target/$(TARGET)/release)
man: build
endif

# Each page from the program's own definition: the agent's from its parameter table (-o manpage, as
# fence-agents do), the others from their clap definitions (--generate man, as ripgrep does).
man:
	mkdir -p $(MAN)
	$(AGENT_RELEASE)/fence_gfs2_recorder -o manpage > $(MAN)/fence_gfs2_recorder.8
	$(RELEASE)/gfs2-fence-watcher --generate man > $(MAN)/gfs2-fence-watcher.8
	$(RELEASE)/gfs2-fence-events --generate man > $(MAN)/gfs2-fence-events.8
	$(RELEASE)/gfs2-fence-alert --generate man > $(MAN)/gfs2-fence-alert.8

install: man
	install -D -m 0755 $(AGENT_RELEASE)/fence_gfs2_recorder $(DESTDIR)$(SBINDIR)/fence_gfs2_recorder
	install -D -m 0755 $(RELEASE)/gfs2-fence-watcher $(DESTDIR)$(BINDIR)/gfs2-fence-watcher
	install -D -m 0755 $(RELEASE)/gfs2-fence-events $(DESTDIR)$(BINDIR)/gfs2-fence-events
	install -D -m 0755 $(RELEASE)/gfs2-fence-alert $(DESTDIR)$(LIBEXECDIR)/gfs2-fence-alert
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/bin/gfs2-fence-watcher|$(BINDIR)/gfs2-fence-watcher|' systemd/gfs2-fence-watcher@.service > $(DESTDIR)$(UNITDIR)/gfs2-fence-watcher@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/gfs2-fence-watcher@.service
	install -D -m 0644 systemd/gfs2-fencing.conf $(DESTDIR)$(TMPFILESDIR)/gfs2-fencing.conf
	install -D -m 0644 systemd/gfs2-fencing.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/gfs2-fencing
	install -d $(DESTDIR)$(MANDIR)
	install -m 0644 $(MAN)/fence_gfs2_recorder.8 $(MAN)/gfs2-fence-watcher.8 $(MAN)/gfs2-fence-events.8 \
		$(MAN)/gfs2-fence-alert.8 $(DESTDIR)$(MANDIR)/
	install -d $(DESTDIR)$(DATADIR)/examples $(DESTDIR)$(DATADIR)/prometheus $(DESTDIR)$(DATADIR)/grafana
	install -d $(DESTDIR)$(DOCDIR)
	install -m 0644 README.md CONTRIBUTING.md $(DESTDIR)$(DOCDIR)/
	for audience in operators reference maintainers; do \
		install -d $(DESTDIR)$(DOCDIR)/docs/$$audience && install -m 0644 docs/$$audience/*.md $(DESTDIR)$(DOCDIR)/docs/$$audience/; \
	done
	install -m 0644 packaging/examples/watcher.json packaging/examples/gfs2-fence-watcher.sysconfig $(DESTDIR)$(DATADIR)/examples/
	install -m 0644 packaging/prometheus/gfs2-fencing.rules.yml packaging/prometheus/gfs2-fencing.rules.test.yml $(DESTDIR)$(DATADIR)/prometheus/
	sed 's|/usr/share/gfs2-fencing/|$(DATADIR)/|' packaging/prometheus/prometheus.yml > $(DESTDIR)$(DATADIR)/prometheus/prometheus.yml
	chmod 0644 $(DESTDIR)$(DATADIR)/prometheus/prometheus.yml
	install -m 0644 packaging/grafana/gfs2-fencing.json $(DESTDIR)$(DATADIR)/grafana/

rpm:
	@command -v rpmbuild >/dev/null || { echo "make rpm needs rpmbuild: apt-get install rpm (Debian) or dnf install rpm-build (RHEL)" >&2; exit 1; }
	rm -rf target/rpm
	$(MAKE) install DESTDIR=$(CURDIR)/target/rpm/root PREFIX=/usr SYSCONFDIR=/etc RELEASE=$(RELEASE) \
		AGENT_RELEASE=$(AGENT_RELEASE)
	rpmbuild -bb --define "_topdir $(CURDIR)/target/rpm" --define "stagedir $(CURDIR)/target/rpm/root" \
		--define "version $(VERSION)" packaging/gfs2-fencing.spec
	@ls target/rpm/RPMS/*/*.rpm
