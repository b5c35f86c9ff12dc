#!/usr/bin/env bash
# Installs the Debian packages pyd and its test suite need. Idempotent: apt runs only when one is missing.
set -euo pipefail
PKGS=(
  crun runc conmon         
  busybox-static           
  docker-registry          
  docker-compose           
  nftables iptables iproute2
  tini catatonit           
  systemd                  
  openssl                  
  e2fsprogs util-linux procps psmisc curl
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
