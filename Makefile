# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create or refresh the virtual environment in .venv from pyproject.toml.
# `make test` also fetches Apache Kafka's jars with Maven once (`make kafka`, needs Java 17+
# and Maven); `make demo` and `make broker` use the embedded Tansu broker and need no Java.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-tansu kafka venv broker clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamdrift demo

test: $(STAMP) kafka
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The broker tests on the embedded Tansu instead of Apache Kafka.
test-tansu: $(STAMP)
	STREAMDRIFT_TEST_BROKER=tansu $(BIN)/python -m pytest tests/integration tests/security \
		tests/backtest/test_topic_backtest.py tests/producers/test_kafka_output.py $(PYTEST_ARGS)

# Apache Kafka's jars (version: tests/apache_kafka/pom.xml) in ~/.cache/streamdrift; instant
# and offline once fetched.
kafka: $(STAMP)
	$(BIN)/python -m tests.apache_kafka.broker fetch

broker: $(STAMP)
	$(BIN)/streamdrift broker

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
