#!/usr/bin/env bash
# The system programs `make test` needs besides Python, installed from Debian packages when one
# is missing: the one place they are installed (`make system-packages`, a step of `make test`);
# the tests only look them up and fail naming this step. Idempotent: with every program present
# it installs nothing and touches no network. Installing needs root and apt-get; otherwise it
# prints what to run and exits 1.
set -euo pipefail

# program on PATH -> the Debian 12 package that ships it, and who needs it
PROGRAMS=(
    "java      openjdk-17-jre-headless  the tests' Apache Kafka broker (or set JAVA_HOME)"
    "mvn       maven                    make kafka: fetches Apache Kafka's jars once"
    "chromium  chromium                 tests/backtest/test_report.py opens the HTML report"
    "stunnel4  stunnel4                 tests/security: TLS in front of the embedded broker"
    "openssl   openssl                  tests/security: the TLS certificates"
    "prometheus prometheus              tests/deploy: the rules in a real Prometheus"
    "promtool  prometheus               tests/deploy: promtool check/test rules"
    "amtool    prometheus-alertmanager  tests/deploy: amtool check-config"
)

present() {
    if [[ $1 == java && -n ${JAVA_HOME:-} ]]; then
        [[ -x $JAVA_HOME/bin/java ]]
    else
        command -v "$1" >/dev/null
    fi
}

missing_packages() {
    local entry program package
    for entry in "${PROGRAMS[@]}"; do
        read -r program package _ <<<"$entry"
        if ! present "$program"; then
            echo "$package"
        fi
    done | sort -u
}

mapfile -t packages < <(missing_packages)
if ((${#packages[@]} == 0)); then
    echo "system packages: every program the tests need is installed (tests/system-packages.sh)"
    exit 0
fi

install=(apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 "${packages[@]}")
echo "system packages: missing ${packages[*]}"
if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
    echo "system packages: cannot install them here (needs root and apt-get). Run as root:" >&2
    echo "    make system-packages      (or: ${install[*]})" >&2
    echo "or install the programs listed in tests/system-packages.sh by other means." >&2
    exit 1
fi

# Debian packages may start their daemons (Prometheus on 9090, Alertmanager on 9093); the tests
# run their own on free ports, so keep the packages' daemons from starting, unless the host
# already has a policy (a Docker image's policy-rc.d does the same).
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
echo "+ apt-get update -qq"
apt-get update -qq
echo "+ ${install[*]}"
"${install[@]}"

mapfile -t still < <(missing_packages)
if ((${#still[@]} != 0)); then
    echo "system packages: still missing after the install: ${still[*]}" >&2
    exit 1
fi
echo "system packages: installed ${packages[*]}"
