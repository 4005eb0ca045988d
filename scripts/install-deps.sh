#!/usr/bin/env bash
# Installs what lwm2m-gw needs to build, test and run its demo on Debian 12 (run as root).
set -euo pipefail
packages=(
  # toolchain
  build-essential cmake pkg-config
  # CoAP and DTLS upstream; coap-client and coap-server for poking at it by hand
  libcoap3-dev libcoap3-bin
  # the configuration file; real serial ports and USB modem enumeration (SMS binding);
  # DTLS over SMS and secured packets
  libconfig-dev libserialport-dev libmbedtls-dev
  # state that survives a restart (registrations, observations, waiting requests)
  libsqlite3-dev
  # unit tests, libFuzzer targets, integration tests (Debian's /usr/bin/python3)
  libcmocka-dev clang libclang-rt-14-dev python3-pytest
  # reading the metrics endpoint; a throwaway X.509 PKI for the certificate tests
  curl openssl
  # MQTT: Paho MQTT C, and mosquitto as the broker the tests start on loopback
  libpaho-mqtt-dev mosquitto
  # the MQTT test device and the MQTT benchmark (Debian's /usr/bin/python3)
  python3-paho-mqtt python3-cbor2
  # HTTP: libmicrohttpd (device-facing server; GnuTLS for client certificates), libcurl
  # (requests to the devices' own HTTP servers)
  libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev
  # the HTTP benchmark's load generator (scripts/bench-http)
  wrk
  # LoRaWAN: the network servers' MQTT JSON (ChirpStack v4, The Things Stack v3)
  libjson-c-dev
  # NIDD via SCEF: scripts/vscef validates T8 requests against 3GPP's OpenAPI files
  # (Debian's /usr/bin/python3)
  python3-jsonschema python3-yaml
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root (sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
