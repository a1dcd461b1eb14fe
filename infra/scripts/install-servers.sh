#!/usr/bin/env bash
# Installs the pinned test servers (nats-server, versitygw) into a cache dir with `go install`.
# Each tool is rebuilt only when its stamp file does not match the pinned version, so a warm
# cache costs nothing. Usage: install-servers.sh   (prints the bin dir on the last line)
#   TABNAS_TOOLS_DIR  install dir (default $HOME/.cache/tabnas/bin)
set -euo pipefail

NATS_SERVER_PKG="github.com/nats-io/nats-server/v2"
NATS_SERVER_VERSION="v2.15.3"
VERSITYGW_PKG="github.com/versity/versitygw/cmd/versitygw"
VERSITYGW_VERSION="v1.8.0"

TOOLS_DIR="${TABNAS_TOOLS_DIR:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache/tabnas/bin}"
mkdir -p "$TOOLS_DIR"

log() { echo "install-servers: $*" >&2; }

# install NAME PKG VERSION: go install PKG@VERSION into TOOLS_DIR unless the stamp says it is there.
install_tool() {
	local name="$1" pkg="$2" version="$3"
	local bin="$TOOLS_DIR/$name" stamp="$TOOLS_DIR/.$name.stamp"
	local want="$pkg@$version $(go env GOOS)/$(go env GOARCH)"
	if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		log "$name $version already in $TOOLS_DIR"
		return 0
	fi
	log "installing $pkg@$version into $TOOLS_DIR (this can take a few minutes)"
	local start=$SECONDS
	# GOFLAGS from the caller (e.g. -mod=vendor) must not leak into a module-less install;
	# -trimpath keeps build paths out of the binary.
	GOBIN="$TOOLS_DIR" GOFLAGS=-buildvcs=false go install -trimpath "$pkg@$version"
	echo "$want" >"$stamp"
	log "installed $name $version in $((SECONDS - start)) s"
}

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
# Serialize concurrent installs (several checkouts testing at once share the cache).
if command -v flock >/dev/null; then
	exec 9>"$TOOLS_DIR/.lock"
	flock 9
fi
install_tool nats-server "$NATS_SERVER_PKG" "$NATS_SERVER_VERSION"
install_tool versitygw "$VERSITYGW_PKG" "$VERSITYGW_VERSION"
echo "$TOOLS_DIR"
