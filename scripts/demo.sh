#!/usr/bin/env bash
# The main job end to end, offline: start the loopback registries (images built from Debian
# packages), build the single static udocker binary, then, as an ordinary user, pull real images
# into a fresh repository and manage them.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "error: run as root (installs packages, starts registries); udocker itself runs as an ordinary user" >&2; exit 1; }
scripts/fixtures.sh up
bin=$(scripts/build-static.sh)
. "$(scripts/fixtures.sh env)"
home=$(mktemp -d /tmp/udocker-demo.XXXXXX)
install -m 0755 "$bin" "$home/udocker"
chown -R "$FIX_USER" "$home"
ud() {
  echo "+ udocker $*"
  setpriv --reuid="$FIX_USER_UID" --regid="$FIX_USER_GID" --clear-groups \
    env -i PATH=/usr/bin:/bin HOME="$home" "$home/udocker" "$@"
}
file "$bin"
ud version
ud pull "$REGISTRY/library/debian:bookworm"
ud pull --registry="http://$REGISTRY" busybox
ud pull "$REGISTRY/test/multilayer:latest"
ud pull --platform=linux/arm64 "$REGISTRY/test/multiarch:latest"
ud images -l -p
ud inspect "$REGISTRY/test/multilayer:latest"
ud manifest inspect "$REGISTRY/test/multiarch:latest"
ud search --list-tags "$REGISTRY/library/busybox"
ud verify "$REGISTRY/library/debian:bookworm" busybox
ud create --name=deb "$REGISTRY/library/debian:bookworm"
ud ps -m -p
ud run --nobanner deb /bin/sh -c 'cat /etc/debian_version; id; ls -ld /proc/self/root'
ud run --nobanner --user=1000:1000 -v /etc/hostname:/mnt/host-hostname:ro deb /bin/sh -c 'id; cat /mnt/host-hostname; echo x > /mnt/host-hostname || echo "read-only, as asked"'
ud run --rm --nobanner "$REGISTRY/test/multilayer:latest"
ud rm deb
ud tag busybox mybox:1
ud rmi busybox
ud images
echo "demo repository: $home/.udocker"
