# Shared set-up for the launch scripts: system packages, toolchain check, builds.
# Sourced, not executed.

CLIPIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLIPIT_APT_PACKAGES=(libopenmpi-dev openmpi-bin libopenblas-dev zlib1g-dev libhdf5-dev libpng-dev libjpeg62-turbo-dev libtiff-dev pkg-config)

log() { printf '[clipit] %s\n' "$*" >&2; }
die() { printf '[clipit] error: %s\n' "$*" >&2; exit 1; }

# Installs Debian package $2 for command $1 when the command is missing and we are root
# with apt; otherwise says what is skipped (for tools that only some tests need).
ensure_optional_command() {
    command -v "$1" >/dev/null && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        log "installing $2 (for $1)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null \
            && return 0
    fi
    log "$1 is not available (package $2): the tests that need it report themselves skipped"
}

# Installs the Debian packages the build needs when they are missing (apt, as root);
# otherwise says exactly what to install.
ensure_system_packages() {
    local missing=()
    for p in "${CLIPIT_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}" >/dev/null \
            || die "apt-get could not install ${missing[*]}"
    else
        die "missing system packages: ${missing[*]}. Install them with:
    sudo apt-get install ${missing[*]}
(or load your cluster's OpenMPI and OpenBLAS modules so that pkg-config finds ompi-c, openblas and zlib)."
    fi
}

ensure_swift() {
    command -v swift >/dev/null || die "no Swift toolchain on PATH: install Swift 6.0 or later (https://swift.org/install)."
}

# Builds the release products (the binaries we run and measure).
build_release() {
    log "building release"
    (cd "$CLIPIT_ROOT" && swift build -c release 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2) \
        || die "release build failed"
    CLIPIT_BIN="$(cd "$CLIPIT_ROOT" && swift build -c release --show-bin-path)"
    export CLIPIT_BIN
}
