# Two commands matter: `make dev` and `make test`. Both install what is missing first.
.PHONY: dev test check setup bench soak fuzz fmt

dev:
	@ARGS="$(ARGS)" bash scripts/dev.sh

test:
	@bash scripts/test.sh

# The fast inner loop: fmt, clippy, unit tests; no emulators, no setup.
check:
	@bash scripts/check.sh

setup:
	@bash scripts/setup.sh

bench:
	@bash scripts/bench.sh

soak:
	@bash scripts/soak.sh

fuzz:
	@bash scripts/fuzz.sh

fmt:
	cargo fmt --all
