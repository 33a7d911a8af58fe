.PHONY: run test lint proto bench

run:        ## the service on the development default
	scripts/dev-server

test:       ## lint, types and the test suite
	scripts/test

lint:
	.venv/bin/ruff check signer tests bench
	.venv/bin/ruff format --check signer tests bench
	.venv/bin/mypy

proto:      ## regenerate the committed gRPC stubs from proto/
	.venv/bin/python -m signer.api.protogen

bench:      ## performance goals of bench/README.md (not part of the tests)
	scripts/bootstrap --dev
	.venv/bin/python bench/run.py
	.venv/bin/python bench/paths.py
	.venv/bin/python bench/activation.py
	.venv/bin/python bench/replicas.py
