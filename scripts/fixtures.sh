#!/usr/bin/env bash
# Test fixtures for udocker-rs: real registries on loopback, filled with real
# images built locally from Debian packages (no internet registry needed).
#
#   scripts/fixtures.sh [up]   install tools, build images (cached), start the
#                              registries + token server, push, write fixtures.env
#   scripts/fixtures.sh down   stop the registries and token server we started
#   scripts/fixtures.sh env    print the path of fixtures.env
#
# Everything lives in $UDOCKER_FIXTURES (default /var/cache/udocker-rs-fixtures);
# `rm -rf` it (after `down`) to start from scratch.  Must run as root.
#
# Registries (Debian's docker-registry = CNCF distribution 2.8):
#   127.0.0.1:5000  plain HTTP, no auth, delete enabled, holds every image
#   127.0.0.1:5001  plain HTTP + htpasswd Basic auth (distribution 2.8 does not
#                   insist on TLS for htpasswd, so no TLS here)
#   127.0.0.1:5002  bearer-token auth, tokens from scripts/token-server.py on :5003
#   127.0.0.1:5004  HTTPS (cert signed by $FIX/certs/ca.pem), no auth -- extra,
#                   for TLS / CA-bundle / --insecure tests
set -Eeuo pipefail
umask 022

FIX=${UDOCKER_FIXTURES:-/var/cache/udocker-rs-fixtures}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# have_pkg, our_pid, stop_pid
. "$SCRIPT_DIR/daemons.inc.sh"
ENV_FILE=$FIX/fixtures.env
BUILD=$FIX/build
LAYOUT=$BUILD/oci            # one umoci OCI layout, one tag per built image
CERTS=$FIX/certs
RUN=$FIX/run                 # pid files
LOGS=$FIX/logs
STATE=$FIX/state             # push stamps

# Bump to force the images to be rebuilt (the debootstrap tarball is kept,
# bump DEBIAN_VERSION to redo that one).
BUILD_VERSION=1
DEBIAN_VERSION=1

PLAIN_ADDR=127.0.0.1:5000
BASIC_ADDR=127.0.0.1:5001
TOKEN_ADDR=127.0.0.1:5002
TOKEN_SERVER_PORT=5003
TLS_ADDR=127.0.0.1:5004
BASIC_USER=testuser
BASIC_PASS=testpass
TOKEN_SERVICE=udocker-test-registry
TOKEN_ISSUER=udocker-test-issuer
TOKEN_REALM=http://127.0.0.1:$TOKEN_SERVER_PORT/token
FIX_USER=udtest

# Fixed timestamps so that rebuilt images keep (mostly) the same digests.
EPOCH=2024-01-01T00:00:00Z
MANY_LAYERS_COUNT=12
MANY_LAYER_SIZE=262144       # bytes of incompressible data per layer

# Debian's python3; the pyenv shim on dev machines is not what we want for a daemon.
PYTHON=/usr/bin/python3
SKOPEO=(skopeo --insecure-policy)   # no /etc/containers/policy.json needed
MANIFEST_ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'

say() { printf '[fixtures] %s\n' "$*"; }
die() { printf '[fixtures] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "command failed (line $LINENO, exit $?): $BASH_COMMAND"' ERR

# ---------------------------------------------------------------- helpers ---

have_cmd() { command -v "$1" >/dev/null 2>&1; }

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# start_daemon NAME PORT MARKER URL CMD... -- start CMD in its own session
# unless our instance already answers; refuse if a stranger holds the port.
start_daemon() {
    local name=$1 port=$2 marker=$3 url=$4 pid i
    shift 4
    if pid=$(our_pid "$name" "$marker"); then
        if [[ -e $RUN/$name.restart ]]; then
            say "$name: config changed, restarting (pid $pid)"
            stop_pid "$pid"
        elif port_open "$port"; then
            say "$name: already running on port $port (pid $pid)"
            return 0
        else
            say "$name: pid $pid alive but port $port closed, restarting"
            stop_pid "$pid"
        fi
    fi
    rm -f "$RUN/$name.restart" "$RUN/$name.pid"
    if port_open "$port"; then
        [[ $port == 5000 ]] && die "port 5000 is in use by a process fixtures.sh did not start" \
            "(Debian's own registry service? try: systemctl disable --now docker-registry)"
        die "port $port is in use by a process fixtures.sh did not start"
    fi
    # setsid: detach from our session so the daemon survives the caller's
    # terminal/CI step; nohup for good measure.  Not a group leader here, so
    # setsid execs in place and $! is the daemon's pid.
    # 9>&-: do not hand our lock fd to the daemon, it would hold the lock forever.
    setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
    echo $! >"$RUN/$name.pid"
    for ((i = 0; i < 150; i++)); do
        # Any HTTP status (401 included) means it is serving.
        [[ $(curl -s -k -o /dev/null -m 1 -w '%{http_code}' "$url" 2>/dev/null) != 000 ]] && {
            say "$name: started on port $port (pid $(<"$RUN/$name.pid"))"
            return 0
        }
        kill -0 "$(<"$RUN/$name.pid")" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 5 "$LOGS/$name.log" >&2 || true
    die "$name did not come up on port $port, see $LOGS/$name.log"
}

# write_if_changed FILE -- stdin to FILE, only touching it when content differs.
# Returns 0 if the file changed.
write_if_changed() {
    local file=$1 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 1
    fi
    chmod 644 "$tmp"
    mv -f "$tmp" "$file"
}

# ----------------------------------------------------------------- install ---

install_packages() {
    local need=()
    have_cmd docker-registry || need+=(docker-registry)
    have_cmd skopeo || need+=(skopeo)
    have_cmd umoci || need+=(umoci)
    have_cmd debootstrap || need+=(debootstrap)
    # The dynamically linked `busybox` package would not run inside a scratch image.
    have_pkg busybox-static || need+=(busybox-static)
    have_cmd htpasswd || need+=(apache2-utils)
    have_cmd openssl || need+=(openssl)
    [[ -x $PYTHON ]] || need+=(python3)
    have_cmd jq || need+=(jq)
    have_cmd curl || need+=(curl)
    have_cmd flock || need+=(util-linux)
    # Used by the end-to-end tests: zstd layers, `file` on the static binary, setpriv, chroot.
    have_cmd zstd || need+=(zstd)
    have_cmd file || need+=(file)
    have_cmd setpriv || need+=(util-linux)
    have_cmd tar || need+=(tar)
    # Terminal tests (tmux), probe programs and the F1 library's checks (gcc, objdump, readelf).
    have_cmd tmux || need+=(tmux)
    have_cmd gcc || need+=(gcc libc6-dev)
    have_cmd objdump || need+=(binutils)
    # The F3/F4 tests read interpreters and run paths back with Debian's patchelf (a second
    # opinion on what our elfpatch wrote).
    have_cmd patchelf || need+=(patchelf)
    # The R1/R2/R3 execution modes' runtimes (tests/tests/runc.rs runs both).
    have_cmd runc || need+=(runc)
    have_cmd crun || need+=(crun)
    # The musl image (build_musl) and the F modes' musl tests: Debian's musl, musl-gcc.
    have_cmd musl-gcc || need+=(musl-tools musl-dev musl)
    # `proot -q` end-to-end test: an aarch64 program through qemu-user.
    have_cmd qemu-aarch64-static || need+=(qemu-user-static)
    if ((${#need[@]} == 0)); then
        say "packages: all present"
        return
    fi
    say "packages: apt-get install ${need[*]} (log: $LOGS/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >>"$LOGS/apt.log" 2>&1 || die "apt-get update failed, see $LOGS/apt.log"
    apt-get install -y --no-install-recommends "${need[@]}" >>"$LOGS/apt.log" 2>&1 ||
        die "apt-get install failed, see $LOGS/apt.log"
    # On a systemd host the package starts its own registry on :5000; we want
    # that port for ours.
    if [[ " ${need[*]} " == *" docker-registry "* && -d /run/systemd/system ]]; then
        systemctl disable --now docker-registry >>"$LOGS/apt.log" 2>&1 || true
    fi
}

ensure_user() {
    if id -u "$FIX_USER" >/dev/null 2>&1; then
        say "user $FIX_USER: exists"
    else
        useradd -m -s /bin/sh "$FIX_USER"
        say "user $FIX_USER: created"
    fi
}

# ------------------------------------------------------------------- certs ---

# One CA signs both the TLS server certificate (registry on :5004) and the
# token signing certificate (its x5c chains to ca.pem = rootcertbundle).
ensure_certs() {
    if [[ -s $CERTS/ca.pem && -s $CERTS/server.pem && -s $CERTS/token.pem ]]; then
        say "certs: present"
        return
    fi
    rm -rf "$CERTS"
    mkdir -p "$CERTS"
    (
        cd "$CERTS"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
            -keyout ca.key -out ca.pem -subj "/CN=udocker-rs test CA" \
            -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        sign_leaf() { # name subject extensions
            openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
            printf '%s\n' "$3" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -days 3650 -sha256 \
                -set_serial "0x$(openssl rand -hex 8)" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
            rm -f "$1.csr" "$1.ext"
        }
        sign_leaf server "/CN=localhost" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
        sign_leaf token "/CN=udocker-test-token-signer" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature"
        chmod 600 ./*.key
        # skopeo --dest-cert-dir wants CA files named *.crt
        mkdir -p skopeo && cp ca.pem skopeo/ca.crt
    )
    say "certs: generated CA, server and token-signing certificates"
}

# ------------------------------------------------------------------ images ---

tag_digest() { # TAG [LAYOUT] -> manifest digest in the layout, or nothing
    jq -r --arg t "$1" '[.manifests[]? | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest][0] // empty' \
        "${2:-$LAYOUT}/index.json" 2>/dev/null || true
}
have_tag() { [[ -n $(tag_digest "$1") ]]; }

# make_layer DIR OUT.tar [tar options] -- tar DIR's content (entries without a
# leading "./", like docker's own layers), root-owned unless options say else.
make_layer() {
    local dir=$1 out=$2
    shift 2
    (cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort |
        tar --create --file "$out" --format=pax \
            --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
            --sort=name --mtime="$EPOCH" --numeric-owner "$@" --files-from=-)
}

# add_layer SRC_TAG DST_TAG DIR DESCRIPTION [tar options]
add_layer() {
    local src=$1 dst=$2 dir=$3 what=$4
    shift 4
    local tar=$BUILD/tmp/layer.tar
    make_layer "$dir" "$tar" "$@"
    umoci raw add-layer --image "$LAYOUT:$src" --tag "$dst" \
        --history.created "$EPOCH" --history.created_by "fixtures.sh: $what" "$tar"
    rm -f "$tar"
}

# Build steps write to TAG-build; this publishes it as TAG (atomic enough: a
# crash leaves only a -build tag, which the next run overwrites).
publish_tag() {
    umoci tag --image "$LAYOUT:$1-build" "$1"
    umoci rm --image "$LAYOUT:$1-build"
}

# A mirror from the machine's apt sources (the only one reachable offline).
detect_mirror() {
    local m
    m=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
        awk '$1 == "deb" && / bookworm( |$)/ { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }')
    if [[ -z $m ]]; then
        # deb822 .sources: paragraph mode, pick a stanza listing suite "bookworm".
        m=$({ cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | awk -v RS= '
            /(^|\n)Enabled:[ \t]*no/ { next }
            /(^|\n)Suites:[^\n]*[ \t]bookworm([ \t]|\n|$)/ {
                if (match($0, /(^|\n)URIs:[ \t]*[^ \t\n]+/)) {
                    s = substr($0, RSTART, RLENGTH); sub(/^\n?URIs:[ \t]*/, "", s); print s; exit
                }
            }')
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

build_busybox() {
    if have_tag busybox; then say "image busybox: cached"; return; fi
    local root=$BUILD/tmp/busybox-root bb a
    bb=$(dpkg -L busybox-static | grep -E '/s?bin/busybox$' | head -n 1)
    rm -rf "$root"
    mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev,home,var}
    cp "$bb" "$root/bin/busybox"
    for a in $("$root/bin/busybox" --list); do
        [[ $a == busybox ]] || ln -s busybox "$root/bin/$a"
    done
    ln -sf busybox "$root/bin/sh"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    umoci new --image "$LAYOUT:busybox-empty"
    add_layer busybox-empty busybox-build "$root" "busybox-static rootfs" --owner=0 --group=0
    umoci rm --image "$LAYOUT:busybox-empty"
    umoci config --image "$LAYOUT:busybox-build" --no-history --created "$EPOCH" \
        --architecture amd64 --os linux --author "udocker-rs fixtures" \
        --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.cmd /bin/sh
    publish_tag busybox
    rm -rf "$root"
    say "image busybox: built ($(wc -l < <("$bb" --list)) applets)"
}

build_debian() {
    if have_tag debian; then say "image debian: cached"; return; fi
    local tar=$BUILD/debian-rootfs-v$DEBIAN_VERSION.tar root=$BUILD/tmp/debian-root mirror
    if [[ ! -s $tar ]]; then
        mirror=$(detect_mirror)
        say "image debian: debootstrap --variant=minbase bookworm from $mirror (minutes; log: $LOGS/debootstrap.log)"
        rm -rf "$root"
        debootstrap --variant=minbase bookworm "$root" "$mirror" >"$LOGS/debootstrap.log" 2>&1 ||
            die "debootstrap failed, see $LOGS/debootstrap.log"
        # debootstrap may leave proc/sys mounted in the target.
        awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
        # Trim what docker's debian images trim; /dev is provided at run time.
        rm -rf "${root:?}"/dev/* "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
            "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
        make_layer "$root" "$tar.tmp"    # keep real owners (e.g. group shadow)
        mv "$tar.tmp" "$tar"
        rm -rf "$root"
    fi
    umoci new --image "$LAYOUT:debian-empty"
    umoci raw add-layer --image "$LAYOUT:debian-empty" --tag debian-build \
        --history.created "$EPOCH" --history.created_by "debootstrap --variant=minbase bookworm" "$tar"
    umoci rm --image "$LAYOUT:debian-empty"
    umoci config --image "$LAYOUT:debian-build" --no-history --created "$EPOCH" \
        --architecture amd64 --os linux \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.cmd bash
    publish_tag debian
    say "image debian: built"
}

build_multilayer() {
    if have_tag multilayer; then say "image multilayer: cached"; return; fi
    local d=$BUILD/tmp/ml
    rm -rf "$d" && mkdir -p "$d"/{l2,l3,l4}
    # layer 2: files that later layers delete / hide
    mkdir -p "$d"/l2/data/dir "$d"/l2/opt "$d"/l2/todelete
    echo a >"$d"/l2/data/a
    echo b >"$d"/l2/data/b
    echo x >"$d"/l2/data/dir/x
    echo keep >"$d"/l2/opt/keep
    echo gone >"$d"/l2/todelete/file
    # layer 3: whiteouts (file, opaque dir, top-level dir) + a new file
    mkdir -p "$d"/l3/data/dir
    : >"$d"/l3/data/.wh.a
    : >"$d"/l3/data/dir/.wh..wh..opq
    echo y >"$d"/l3/data/dir/y
    : >"$d"/l3/.wh.todelete
    # layer 4: a hard link and a symlink (both resolved inside one layer)
    mkdir -p "$d"/l4/data
    echo c >"$d"/l4/data/c
    ln "$d"/l4/data/c "$d"/l4/data/c-hard
    ln -s c "$d"/l4/data/c-sym
    add_layer busybox multilayer-build "$d/l2" "add /data /opt /todelete" --owner=0 --group=0
    add_layer multilayer-build multilayer-build "$d/l3" "whiteouts" --owner=0 --group=0
    add_layer multilayer-build multilayer-build "$d/l4" "links" --owner=0 --group=0
    umoci config --image "$LAYOUT:multilayer-build" --no-history --created "$EPOCH" \
        --clear config.env --clear config.cmd \
        --config.entrypoint /bin/sh --config.entrypoint -c \
        --config.cmd "echo hello from multilayer" \
        --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.env FOO=bar \
        --config.workingdir /data --config.exposedports 8080/tcp \
        --config.label org.udocker-rs.fixture=multilayer --config.label maintainer=udocker-rs-tests
    publish_tag multilayer
    rm -rf "$d"
    say "image multilayer: built"
}

build_multiarch() {
    if have_tag multiarch; then say "image multiarch: cached"; return; fi
    local d=$BUILD/tmp/ma arch idx hex
    for arch in amd64 arm64; do
        rm -rf "$d" && mkdir -p "$d"
        echo "$arch" >"$d/platform"
        add_layer busybox "multiarch-$arch" "$d" "platform marker" --owner=0 --group=0
        umoci config --image "$LAYOUT:multiarch-$arch" --no-history --created "$EPOCH" \
            --architecture "$arch" --os linux
    done
    rm -rf "$d"
    # umoci cannot make an index, so write one by hand and tag it in index.json.
    idx=$(jq -cn --arg amd "$(tag_digest multiarch-amd64)" --arg arm "$(tag_digest multiarch-arm64)" \
        --argjson amds "$(stat -c %s "$LAYOUT/blobs/sha256/$(tag_digest multiarch-amd64 | cut -d: -f2)")" \
        --argjson arms "$(stat -c %s "$LAYOUT/blobs/sha256/$(tag_digest multiarch-arm64 | cut -d: -f2)")" '{
        schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $amd, size: $amds,
           platform: {architecture: "amd64", os: "linux"}},
          {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $arm, size: $arms,
           platform: {architecture: "arm64", os: "linux", variant: "v8"}}]}')
    hex=$(printf '%s' "$idx" | sha256sum | cut -d' ' -f1)
    printf '%s' "$idx" >"$LAYOUT/blobs/sha256/$hex"
    jq -c --arg d "sha256:$hex" --argjson s "${#idx}" '.manifests += [{
        mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
        annotations: {"org.opencontainers.image.ref.name": "multiarch"}}]' \
        "$LAYOUT/index.json" >"$LAYOUT/index.json.tmp"
    mv "$LAYOUT/index.json.tmp" "$LAYOUT/index.json"
    say "image multiarch: built (index of amd64 + arm64)"
}

build_many() {
    if have_tag many; then say "image many: cached"; return; fi
    local d=$BUILD/tmp/many i src=busybox
    for ((i = 1; i <= MANY_LAYERS_COUNT; i++)); do
        rm -rf "$d" && mkdir -p "$d"
        # Deterministic but incompressible content (AES-CTR keystream), so
        # each layer has real transfer size for the parallel-download bench.
        head -c "$MANY_LAYER_SIZE" /dev/zero |
            openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$i")" -iv "$(printf '%032x' 0)" >"$d/layer$i"
        add_layer "$src" many-build "$d" "add /layer$i" --owner=0 --group=0
        src=many-build
    done
    rm -rf "$d"
    publish_tag many
    say "image many: built ($MANY_LAYERS_COUNT extra layers)"
}

# A musl container like a minimal Alpine: musl's loader (= libc) at /lib/ld-musl-x86_64.so.1,
# libc.musl-x86_64.so.1 pointing at it, and every program dynamically linked against it with
# Debian's musl-gcc: /bin/sh is tests/probe/msh.c (Debian has no musl build of a real shell, and
# a static busybox would bypass LD_PRELOAD; its applets echo, cat, ls… are links to it, as in
# busybox), /usr/bin/mhello needs /usr/lib/libmhello.so.1 (a
# library the loader must find in the container). Rebuilt when msh.c or musl changes.
build_musl() {
    local root=$BUILD/tmp/musl-root src=$SCRIPT_DIR/../tests/probe/msh.c libc stamp
    libc=$(dpkg -L musl | grep -E '/libc\.so$' | head -n 1)
    stamp="$(sha256sum "$src" | cut -d' ' -f1) $(dpkg-query -W -f='${Version}' musl)"
    if have_tag musl && [[ $(cat "$BUILD/.musl.stamp" 2>/dev/null) == "$stamp" ]]; then
        say "image musl: cached"
        return
    fi
    have_tag musl && umoci rm --image "$LAYOUT:musl"
    rm -rf "$root"
    mkdir -p "$root"/{bin,etc,lib,tmp,root,proc,sys,dev,home,usr/bin,usr/lib,usr/local/bin,var/tmp}
    install -m 0755 "$libc" "$root/lib/ld-musl-x86_64.so.1"
    ln -s ld-musl-x86_64.so.1 "$root/lib/libc.musl-x86_64.so.1"
    musl-gcc -O2 -o "$root/bin/msh" "$src"
    for a in sh echo cat ls pwd true false test readlink; do ln -s msh "$root/bin/$a"; done
    printf 'const char *mhello(void) { return "hello from libmhello"; }\n' >"$BUILD/tmp/mhello-lib.c"
    printf '#include <stdio.h>\nconst char *mhello(void);\nint main(void) { puts(mhello()); return 0; }\n' \
        >"$BUILD/tmp/mhello.c"
    musl-gcc -O2 -shared -fPIC -Wl,-soname,libmhello.so.1 -o "$root/usr/lib/libmhello.so.1" "$BUILD/tmp/mhello-lib.c"
    musl-gcc -O2 -o "$root/usr/bin/mhello" "$BUILD/tmp/mhello.c" -L"$root/usr/lib" -l:libmhello.so.1
    rm -f "$BUILD"/tmp/mhello*.c
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    printf 'NAME="musl fixture"\nID=musl\nVERSION_ID=%s\n' "$(dpkg-query -W -f='${Version}' musl)" >"$root/etc/os-release"
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 700 "$root/root"
    umoci new --image "$LAYOUT:musl-empty"
    add_layer musl-empty musl-build "$root" "musl rootfs (Debian musl, musl-gcc)" --owner=0 --group=0
    umoci rm --image "$LAYOUT:musl-empty"
    umoci config --image "$LAYOUT:musl-build" --no-history --created "$EPOCH" \
        --architecture amd64 --os linux --author "udocker-rs fixtures" \
        --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.cmd /bin/sh
    publish_tag musl
    echo "$stamp" >"$BUILD/.musl.stamp"
    rm -rf "$root"
    say "image musl: built"
}

build_images() {
    mkdir -p "$BUILD"
    if [[ $(cat "$BUILD/VERSION" 2>/dev/null) != "$BUILD_VERSION" ]]; then
        rm -rf "$LAYOUT" "$BUILD/tmp"
        echo "$BUILD_VERSION" >"$BUILD/VERSION"
    fi
    [[ -f $LAYOUT/index.json ]] || umoci init --layout "$LAYOUT"
    rm -rf "$BUILD/tmp" && mkdir -p "$BUILD/tmp"
    # Leftovers of an interrupted build.
    local t
    for t in $(jq -r '.manifests[]?.annotations["org.opencontainers.image.ref.name"] // empty' "$LAYOUT/index.json" | grep -E -- '-(build|empty)$' || true); do
        umoci rm --image "$LAYOUT:$t"
    done
    build_busybox
    build_multilayer
    build_multiarch
    build_many
    build_debian
    build_musl
    build_zstd
    rmdir "$BUILD/tmp" 2>/dev/null || true
}

# zstd variant of busybox in its own layout.  It cannot be made on the fly by
# `skopeo copy --dest-compress-format zstd ... docker://`: skopeo 1.9 then
# reuses the gzip blob the registry already has instead of recompressing.
build_zstd() {
    local z=$BUILD/oci-zstd src
    src=$(tag_digest busybox)
    if [[ $(cat "$z/.stamp" 2>/dev/null) == "$src" ]] && [[ -n $(tag_digest zstd "$z") ]]; then
        say "image zstd: cached"
        return
    fi
    rm -rf "$z"
    "${SKOPEO[@]}" copy -q --dest-compress --dest-compress-format zstd "oci:$LAYOUT:busybox" "oci:$z:zstd" >/dev/null
    echo "$src" >"$z/.stamp"
    say "image zstd: built (busybox recompressed with zstd)"
}

build_archives() {
    local dir=$FIX/archives src
    src=$(tag_digest busybox)
    mkdir -p "$dir"
    # Rebuild when the busybox image changed (stamp = its digest).
    if [[ $(cat "$dir/.stamp" 2>/dev/null) == "$src" && -s $dir/busybox-docker-archive.tar && -s $dir/busybox-oci-archive.tar ]]; then
        say "archives: present"
        return
    fi
    rm -f "$dir"/*.tar "$dir"/*.tmp
    "${SKOPEO[@]}" copy -q "oci:$LAYOUT:busybox" "docker-archive:$dir/docker.tmp:busybox:latest" >/dev/null
    "${SKOPEO[@]}" copy -q "oci:$LAYOUT:busybox" "oci-archive:$dir/oci.tmp:busybox:latest" >/dev/null
    mv "$dir/docker.tmp" "$dir/busybox-docker-archive.tar"
    mv "$dir/oci.tmp" "$dir/busybox-oci-archive.tar"
    chmod 644 "$dir"/*.tar
    echo "$src" >"$dir/.stamp"
    say "archives: written to $dir"
}

# ------------------------------------------------------------------ rootfs ---

# Plain root directories for the tracer tests (tests/tests/tracer.rs) and
# scripts/bench-engines: $ROOTFS/<name>, root-owned; users copy them, never
# write to them.  Written to fixtures.env as ROOTFS_<NAME>; a suite the
# mirror does not carry (or that debootstrap cannot build) is skipped with a
# message and left out, so tests skip it with a reason.
ROOTFS=$FIX/rootfs
ROOTFS_VERSION=1
ROOTFS_SUITES=(bookworm bullseye trixie busybox)

rootfs_cached() { [[ $(cat "$ROOTFS/.$1.stamp" 2>/dev/null) == "$ROOTFS_VERSION" && -d $ROOTFS/$1 ]]; }

# rootfs_publish NAME TMPDIR -- trim, then move TMPDIR into place and stamp it.
rootfs_publish() {
    local name=$1 tmp=$2
    awk -v r="$tmp/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "${tmp:?}"/dev/* "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/log/*.log
    rm -rf "${ROOTFS:?}/$name"
    mv "$tmp" "$ROOTFS/$name"
    echo "$ROOTFS_VERSION" >"$ROOTFS/.$name.stamp"
}

# A debootstrap --variant=minbase of SUITE from the machine's mirror.
build_rootfs_suite() { # SUITE
    local suite=$1 tmp=$ROOTFS/.$1-tmp mirror
    if rootfs_cached "$suite"; then say "rootfs $suite: cached"; return; fi
    rm -f "$ROOTFS/.$suite.stamp"
    rm -rf "$tmp"
    if [[ $suite == bookworm && -s $BUILD/debian-rootfs-v$DEBIAN_VERSION.tar ]]; then
        # The debian image's own debootstrap: the same files the tests pull.
        mkdir -p "$tmp"
        tar -xpf "$BUILD/debian-rootfs-v$DEBIAN_VERSION.tar" -C "$tmp" --numeric-owner
        rootfs_publish "$suite" "$tmp"
        say "rootfs $suite: unpacked from the debian image's tarball"
        return
    fi
    mirror=$(detect_mirror)
    if ! curl -fsS -m 20 -o /dev/null "$mirror/dists/$suite/Release" 2>/dev/null; then
        say "rootfs $suite: skipped: $mirror does not carry $suite (or is unreachable)"
        return
    fi
    say "rootfs $suite: debootstrap --variant=minbase from $mirror (minutes; log: $LOGS/debootstrap-$suite.log)"
    if ! debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$LOGS/debootstrap-$suite.log" 2>&1; then
        awk -v r="$tmp/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
        rm -rf "$tmp"
        say "rootfs $suite: skipped: debootstrap failed ($(tail -n 1 "$LOGS/debootstrap-$suite.log"))"
        return
    fi
    rootfs_publish "$suite" "$tmp"
    say "rootfs $suite: built"
}

# The busybox image's root, unpacked.
build_rootfs_busybox() {
    local tmp=$ROOTFS/.busybox-tmp
    if rootfs_cached busybox; then say "rootfs busybox: cached"; return; fi
    rm -rf "$tmp" "$ROOTFS/.busybox-bundle"
    umoci unpack --image "$LAYOUT:busybox" "$ROOTFS/.busybox-bundle" >/dev/null
    mv "$ROOTFS/.busybox-bundle/rootfs" "$tmp"
    rm -rf "$ROOTFS/.busybox-bundle"
    rootfs_publish busybox "$tmp"
    say "rootfs busybox: unpacked from the busybox image"
}

build_rootfs() {
    mkdir -p "$ROOTFS"
    chmod 755 "$ROOTFS"
    local s
    for s in "${ROOTFS_SUITES[@]}"; do
        if [[ $s == busybox ]]; then build_rootfs_busybox; else build_rootfs_suite "$s"; fi
    done
}

# -------------------------------------------------------------- registries ---

registry_config() { # NAME ADDR
    local name=$1 addr=$2 dir=$FIX/registries/$1
    cat <<EOF
# generated by scripts/fixtures.sh
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
  # fixed secret: keeps upload URLs valid across restarts, silences a warning
  secret: udocker-rs-fixtures-$name
EOF
    case $name in
    tls)
        cat <<EOF
  tls:
    certificate: $CERTS/server.pem
    key: $CERTS/server.key
EOF
        ;;
    basic)
        cat <<EOF
auth:
  htpasswd:
    realm: udocker-test-basic
    path: $dir/htpasswd
EOF
        ;;
    token)
        cat <<EOF
auth:
  token:
    realm: $TOKEN_REALM
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER
    rootcertbundle: $CERTS/ca.pem
EOF
        ;;
    esac
}

start_registry() { # NAME ADDR SCHEME
    local name=$1 addr=$2 scheme=$3 dir=$FIX/registries/$1
    mkdir -p "$dir/data"
    if [[ $name == basic && ! -s $dir/htpasswd ]]; then
        htpasswd -Bbn "$BASIC_USER" "$BASIC_PASS" >"$dir/htpasswd"
    fi
    if registry_config "$name" "$addr" | write_if_changed "$dir/config.yml"; then
        touch "$RUN/registry-$name.restart"
    fi
    start_daemon "registry-$name" "${addr##*:}" "$dir/config.yml" "$scheme://$addr/v2/" \
        docker-registry serve "$dir/config.yml"
}

start_services() {
    # The token server runs from a copy in $RUN, so that every checkout (a developer's tree, CI's
    # fresh clone) recognises the running one as its own; it restarts when the code differs.
    local marker=$RUN/token-server.py
    if ! cmp -s "$SCRIPT_DIR/token-server.py" "$marker"; then
        install -m 0644 "$SCRIPT_DIR/token-server.py" "$marker"
        [[ -e $RUN/token-server.pid ]] && touch "$RUN/token-server.restart"
    fi
    start_daemon token-server "$TOKEN_SERVER_PORT" "$marker" "http://127.0.0.1:$TOKEN_SERVER_PORT/healthz" \
        "$PYTHON" "$marker" --addr 127.0.0.1 --port "$TOKEN_SERVER_PORT" \
        --key "$CERTS/token.key" --cert "$CERTS/token.pem" \
        --issuer "$TOKEN_ISSUER" --service "$TOKEN_SERVICE" \
        --user "$BASIC_USER" --password "$BASIC_PASS"
    start_registry plain "$PLAIN_ADDR" http
    start_registry basic "$BASIC_ADDR" http
    start_registry token "$TOKEN_ADDR" http
    start_registry tls "$TLS_ADDR" https
}

# reg_curl KIND REPO CURL-ARGS... -- curl against registry KIND with the right
# credentials (a token scoped to REPO for the token registry).
reg_curl() {
    local kind=$1 repo=$2 tok
    shift 2
    case $kind in
    plain) curl -sS "$@" ;;
    tls) curl -sS --cacert "$CERTS/ca.pem" "$@" ;;
    basic) curl -sS -u "$BASIC_USER:$BASIC_PASS" "$@" ;;
    token)
        tok=$(curl -sS -f -u "$BASIC_USER:$BASIC_PASS" \
            "$TOKEN_REALM?service=$TOKEN_SERVICE&scope=repository:$repo:pull" | jq -r .token)
        curl -sS -H "Authorization: Bearer $tok" "$@"
        ;;
    esac
}
reg_addr() {
    case $1 in plain) echo $PLAIN_ADDR ;; basic) echo $BASIC_ADDR ;; token) echo $TOKEN_ADDR ;; tls) echo $TLS_ADDR ;; esac
}
reg_scheme() { [[ $1 == tls ]] && echo https || echo http; }

# remote_manifest KIND REPO REF -> sets R_DIGEST and R_BODY (empty if absent)
remote_manifest() {
    local kind=$1 repo=$2 ref=$3 hdr
    hdr=$(mktemp)
    R_BODY=$(reg_curl "$kind" "$repo" -D "$hdr" -H "Accept: $MANIFEST_ACCEPT" \
        "$(reg_scheme "$kind")://$(reg_addr "$kind")/v2/$repo/manifests/$ref") || R_BODY=
    R_DIGEST=
    if head -n 1 "$hdr" | grep -q ' 200'; then
        R_DIGEST=$(tr -d '\r' <"$hdr" | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
    else
        R_BODY=
    fi
    rm -f "$hdr"
}

# push [LAYOUT:]SRC_TAG KIND REPO:TAG [skopeo copy options] -- skipped when the
# stamp says this exact source+options was pushed and the registry still has it.
push() {
    local src=$1 kind=$2 dest=$3 layout=$LAYOUT
    shift 3
    if [[ $src == *:* ]]; then layout=${src%:*} src=${src##*:}; fi
    local stamp=$STATE/push-$kind-${dest//[\/:]/_} want
    want="$(tag_digest "$src" "$layout") $*"
    if [[ $(cat "$stamp" 2>/dev/null) == "$want" ]]; then
        remote_manifest "$kind" "${dest%:*}" "${dest##*:}"
        if [[ -n $R_DIGEST ]]; then
            say "push $(reg_addr "$kind")/$dest: present"
            return
        fi
    fi
    local opts=()
    case $kind in
    plain) opts=(--dest-tls-verify=false) ;;
    basic | token) opts=(--dest-tls-verify=false --dest-creds "$BASIC_USER:$BASIC_PASS") ;;
    tls) opts=(--dest-cert-dir "$CERTS/skopeo") ;;
    esac
    "${SKOPEO[@]}" copy -q "${opts[@]}" "$@" "oci:$layout:$src" "docker://$(reg_addr "$kind")/$dest" \
        >>"$LOGS/skopeo.log" 2>&1 || die "push of $src to $(reg_addr "$kind")/$dest failed, see $LOGS/skopeo.log"
    echo "$want" >"$stamp"
    say "push $(reg_addr "$kind")/$dest: pushed"
}

push_images() {
    mkdir -p "$STATE"
    push busybox plain library/busybox:latest --format v2s2
    push busybox plain library/busybox:oci --format oci
    push debian plain library/debian:bookworm --format v2s2
    push multilayer plain test/multilayer:latest --format oci
    push multiarch plain test/multiarch:latest --all --format oci
    # --preserve-digests: otherwise skopeo swaps the zstd layer for the
    # registry's gzip copy of the same content.
    push "$BUILD/oci-zstd:zstd" plain test/zstd:latest --format oci --preserve-digests
    push many plain test/many:latest --format v2s2
    push musl plain test/musl:latest --format v2s2
    push busybox basic library/busybox:latest --format v2s2
    push busybox token library/busybox:latest --format v2s2
    push busybox token private/busybox:latest --format v2s2
    push busybox tls library/busybox:latest --format v2s2
}

# ------------------------------------------------------------- fixtures.env --

ENV_LINES=()
env_line() { # KEY VALUE (quoted only when it contains spaces)
    if [[ $2 == *" "* ]]; then ENV_LINES+=("$1=\"$2\""); else ENV_LINES+=("$1=$2"); fi
}

# describe PREFIX KIND REPO:TAG -- PREFIX_REF, PREFIX_DIGEST and, for single
# manifests, PREFIX_CONFIG and PREFIX_LAYERS.
describe() {
    local p=$1 kind=$2 ref=$3
    remote_manifest "$kind" "${ref%:*}" "${ref##*:}"
    [[ -n $R_DIGEST ]] || die "$(reg_addr "$kind")/$ref is missing after push"
    env_line "${p}_REF" "$(reg_addr "$kind")/$ref"
    env_line "${p}_DIGEST" "$R_DIGEST"
    if jq -e '.layers' <<<"$R_BODY" >/dev/null; then
        env_line "${p}_CONFIG" "$(jq -r .config.digest <<<"$R_BODY")"
        env_line "${p}_LAYERS" "$(jq -r '[.layers[].digest] | join(" ")' <<<"$R_BODY")"
    fi
}

write_env() {
    local uid gid
    uid=$(id -u "$FIX_USER")
    gid=$(id -g "$FIX_USER")
    ENV_LINES=("# generated by scripts/fixtures.sh -- do not edit")
    env_line FIX "$FIX"
    env_line REGISTRY "$PLAIN_ADDR"
    env_line REGISTRY_BASIC "$BASIC_ADDR"
    env_line REGISTRY_BASIC_SCHEME http
    env_line REGISTRY_TOKEN "$TOKEN_ADDR"
    env_line REGISTRY_TLS "$TLS_ADDR"
    env_line TOKEN_SERVER "http://127.0.0.1:$TOKEN_SERVER_PORT"
    env_line TOKEN_REALM "$TOKEN_REALM"
    env_line TOKEN_SERVICE "$TOKEN_SERVICE"
    env_line TOKEN_ISSUER "$TOKEN_ISSUER"
    env_line FIX_CA "$CERTS/ca.pem"
    env_line FIX_USER "$FIX_USER"
    env_line FIX_USER_UID "$uid"
    env_line FIX_USER_GID "$gid"
    env_line BASIC_USER "$BASIC_USER"
    env_line BASIC_PASS "$BASIC_PASS"
    env_line ARCHIVE_DOCKER "$FIX/archives/busybox-docker-archive.tar"
    env_line ARCHIVE_OCI "$FIX/archives/busybox-oci-archive.tar"
    env_line OCI_LAYOUT "$LAYOUT"
    env_line MANY_LAYERS_COUNT "$MANY_LAYERS_COUNT"
    describe BUSYBOX plain library/busybox:latest
    describe BUSYBOX_OCI plain library/busybox:oci
    describe DEBIAN plain library/debian:bookworm
    describe MULTILAYER plain test/multilayer:latest
    describe MULTIARCH_INDEX plain test/multiarch:latest
    env_line MULTIARCH_AMD64_DIGEST "$(jq -r '.manifests[] | select(.platform.architecture == "amd64") | .digest' <<<"$R_BODY")"
    env_line MULTIARCH_ARM64_DIGEST "$(jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest' <<<"$R_BODY")"
    describe ZSTD plain test/zstd:latest
    env_line ZSTD_LAYER_MEDIATYPE "$(jq -r '.layers[0].mediaType' <<<"$R_BODY")"
    describe MANY plain test/many:latest
    describe MUSL plain test/musl:latest
    describe BASIC_BUSYBOX basic library/busybox:latest
    describe TOKEN_BUSYBOX token library/busybox:latest
    describe TOKEN_PRIVATE_BUSYBOX token private/busybox:latest
    describe TLS_BUSYBOX tls library/busybox:latest
    local s
    for s in "${ROOTFS_SUITES[@]}"; do
        rootfs_cached "$s" && env_line "ROOTFS_${s^^}" "$ROOTFS/$s"
    done
    if printf '%s\n' "${ENV_LINES[@]}" | write_if_changed "$ENV_FILE"; then
        say "fixtures.env: written ($ENV_FILE)"
    else
        say "fixtures.env: unchanged ($ENV_FILE)"
    fi
}

# ------------------------------------------------------------------- main ---

cmd_up() {
    [[ $EUID -eq 0 ]] || die "must run as root (installs packages, creates user $FIX_USER)"
    mkdir -p "$FIX" "$RUN" "$LOGS" "$STATE"
    chmod 755 "$FIX"
    # Serialise concurrent `up`s (e.g. several test binaries starting at once).
    exec 9>"$RUN/up.lock"
    flock 9
    install_packages
    ensure_user
    ensure_certs
    build_images
    build_archives
    build_rootfs
    start_services
    push_images
    write_env
    say "up: done in ${SECONDS}s"
}

cmd_down() {
    [[ $EUID -eq 0 ]] || die "must run as root"
    local name marker pid f
    for f in "$RUN"/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        case $name in
        token-server) marker=$RUN/token-server.py ;;
        registry-*) marker=$FIX/registries/${name#registry-}/config.yml ;;
        *) continue ;;
        esac
        if pid=$(our_pid "$name" "$marker"); then
            stop_pid "$pid"
            say "$name: stopped (pid $pid)"
        else
            say "$name: not running"
        fi
        rm -f "$f"
    done
}

case ${1:-up} in
up) cmd_up ;;
down) cmd_down ;;
env)
    [[ -f $ENV_FILE ]] || die "$ENV_FILE does not exist yet; run: $0 up"
    echo "$ENV_FILE"
    ;;
-h | --help | help) sed -n '2,/^set -E/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (expected: up, down, env)" ;;
esac
