.PHONY: run test lint proto bench fuzz

run:        ## the service on the development default
	scripts/dev-server

test:       ## lint, types and the test suite
	scripts/test

lint:
	.venv/bin/ruff check signer tests bench fuzz
	.venv/bin/ruff format --check signer tests bench fuzz
	.venv/bin/mypy

proto:      ## regenerate the committed gRPC stubs from proto/
	.venv/bin/python -m signer.api.protogen

bench:      ## performance goals of bench/README.md (not part of the tests)
	scripts/bootstrap --dev
	.venv/bin/python bench/run.py
	.venv/bin/python bench/paths.py
	.venv/bin/python bench/activation.py
	.venv/bin/python bench/campaigns.py
	.venv/bin/python bench/replicas.py
	.venv/bin/python bench/cli.py
	.venv/bin/python bench/devices_import.py

RUNS ?= 1000000
fuzz:       ## atheris over every parser of outside bytes, RUNS inputs each (fuzz/README.md); not in CI
	.venv/bin/python fuzz/run.py --runs $(RUNS) $(if $(MAX_TIME),--max-time $(MAX_TIME))

kill9:      ## kill -9 the server x100 mid-signing, then check counters and the audit trail
	.venv/bin/python bench/kill9.py

load:       ## 64 clients on every RPC for 60 s, then a burst of 3,000 concurrent calls
	.venv/bin/python bench/load.py
