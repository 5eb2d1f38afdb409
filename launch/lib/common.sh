# Shared set-up for the launch scripts: system packages, toolchain check, builds.
# Sourced, not executed.

CLIPIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The BLAS library clipit is built with (Package.swift reads the same variable):
# openblas (default), blis or mkl. docs/benchmarks.md, "BLAS libraries".
CLIPIT_BLAS="$(tr '[:upper:]' '[:lower:]' <<<"${CLIPIT_BLAS:-openblas}")"
export CLIPIT_BLAS
CLIPIT_APT_PACKAGES=(libopenmpi-dev openmpi-bin zlib1g-dev libhdf5-dev libpng-dev libjpeg62-turbo-dev libtiff-dev pkg-config)
case "$CLIPIT_BLAS" in
    openblas) CLIPIT_APT_PACKAGES+=(libopenblas-dev) ;;
    blis) CLIPIT_APT_PACKAGES+=(libblis-pthread-dev) ;;   # 32-bit BLAS integers (not libblis64-*); see ensure_blis
    mkl) ;;                                         # from an HPC module or pip (ensure_mkl)
    *) printf '[clipit] error: CLIPIT_BLAS must be openblas, blis or mkl, got %s\n' "$CLIPIT_BLAS" >&2; exit 1 ;;
esac
# A build folder per BLAS library; OpenBLAS keeps SwiftPM's default (.build).
CLIPIT_SCRATCH=()
[ "$CLIPIT_BLAS" != openblas ] && CLIPIT_SCRATCH=(--scratch-path "$CLIPIT_ROOT/.build-$CLIPIT_BLAS")
CLIPIT_LINK_FLAGS=()   # extra swift build flags (ensure_mkl)
# The CPU the numeric Swift modules are compiled for (Package.swift reads the same
# variable): unless set, haswell (AVX2 + FMA) when this machine has both, else generic.
# The same bits either way; a binary built for haswell needs AVX2 where it runs
# (docs/cluster.md, "Building for the compute nodes").
if [ -z "${CLIPIT_TARGET_CPU:-}" ]; then
    if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null; then
        CLIPIT_TARGET_CPU=haswell
    else
        CLIPIT_TARGET_CPU=generic
    fi
fi
export CLIPIT_TARGET_CPU

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
(or load your cluster's OpenMPI and BLAS modules so that pkg-config finds ompi-c, zlib and $CLIPIT_BLAS)."
    fi
}

# With CLIPIT_BLAS=blis on Debian: the BLIS variant that Debian's alternatives select must be
# the POSIX-threads one. The OpenMP variant's blis.h includes <omp.h>, which is GCC's and not
# on the include path of Swift's clang, so the CBLAS module would not build. As root, selects
# blis-pthread (header and library); otherwise says how.
ensure_blis() {
    [ "$CLIPIT_BLAS" = blis ] || return 0
    local header=/usr/include/x86_64-linux-gnu/blis.h arch=x86_64-linux-gnu
    [ -e "$header" ] || return 0   # not Debian's layout: pkg-config blis (a module, Spack) decides
    case "$(readlink -f "$header")" in
        */blis-pthread/*) return 0 ;;
    esac
    if [ "$(id -u)" -eq 0 ] && command -v update-alternatives >/dev/null; then
        log "selecting Debian's blis-pthread variant (the OpenMP variant's blis.h needs GCC's omp.h)"
        update-alternatives --quiet --set "libblis.so-$arch" "/usr/lib/$arch/blis-pthread/libblis.so" \
            && update-alternatives --quiet --set "libblis.so.4-$arch" "/usr/lib/$arch/blis-pthread/libblis.so.4" \
            || die "could not select blis-pthread with update-alternatives"
    else
        die "CLIPIT_BLAS=blis needs Debian's blis-pthread variant selected (the OpenMP one's blis.h needs GCC's omp.h):
    sudo update-alternatives --set libblis.so-$arch /usr/lib/$arch/blis-pthread/libblis.so
    sudo update-alternatives --set libblis.so.4-$arch /usr/lib/$arch/blis-pthread/libblis.so.4"
    fi
}

# With CLIPIT_BLAS=mkl: makes pkg-config find MKL's single dynamic library (mkl-sdl.pc) and
# the loader find libmkl_rt. Looks where pkg-config already does, then under MKLROOT (set by
# oneAPI's setvars.sh and by HPC modules; also accepts a virtual environment or conda prefix
# into which the pip wheels mkl-devel and mkl-include were installed), then VIRTUAL_ENV and
# CONDA_PREFIX.
ensure_mkl() {
    [ "$CLIPIT_BLAS" = mkl ] || return 0
    if ! pkg-config --exists mkl-sdl 2>/dev/null; then
        local prefix dir
        for prefix in "${MKLROOT:-}" "${VIRTUAL_ENV:-}" "${CONDA_PREFIX:-}"; do
            [ -n "$prefix" ] || continue
            for dir in "$prefix/lib/pkgconfig" "$prefix/lib/intel64/pkgconfig"; do
                if [ -f "$dir/mkl-sdl.pc" ]; then
                    export PKG_CONFIG_PATH="$dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
                    break 2
                fi
            done
        done
        pkg-config --exists mkl-sdl 2>/dev/null || die "CLIPIT_BLAS=mkl, but MKL was not found (no mkl-sdl.pc for pkg-config).
Load your cluster's MKL module (it sets MKLROOT), or source oneAPI's setvars.sh, or install the
pip wheels into a virtual environment and point MKLROOT at it:
    python3 -m venv ~/venv-mkl && ~/venv-mkl/bin/pip install mkl-devel && export MKLROOT=~/venv-mkl"
    fi
    local libdir versioned links
    libdir="$(pkg-config --variable=libdir mkl-sdl)"
    log "MKL: $(pkg-config --modversion mkl-sdl) from $libdir"
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # The pip wheels ship libmkl_rt.so.N only; -lmkl_rt needs libmkl_rt.so, so link one
    # in a folder of clipit's own rather than in the wheel's.
    if [ ! -e "$libdir/libmkl_rt.so" ]; then
        versioned="$(ls "$libdir"/libmkl_rt.so.* 2>/dev/null | head -n 1)"
        [ -n "$versioned" ] || die "no libmkl_rt.so* in $libdir (the MKL library clipit links)"
        links="$CLIPIT_ROOT/.build-mkl/mkl-link"
        mkdir -p "$links" && ln -sf "$versioned" "$links/libmkl_rt.so" || die "could not create $links/libmkl_rt.so"
        CLIPIT_LINK_FLAGS=(-Xlinker "-L$links")
    fi
}

# Runs a command with every BLAS library's thread variable (and OpenMP's) set to $1, so
# that the setting holds whichever library the binary was built with.
blas_thread_environment() {
    local threads=$1; shift
    OPENBLAS_NUM_THREADS=$threads BLIS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads OMP_NUM_THREADS=$threads "$@"
}

# The folder of the release binaries for CLIPIT_BLAS.
release_bin_path() {
    (cd "$CLIPIT_ROOT" && swift build -c release "${CLIPIT_SCRATCH[@]}" --show-bin-path)
}

ensure_swift() {
    command -v swift >/dev/null || die "no Swift toolchain on PATH: install Swift 6.0 or later (https://swift.org/install)."
}

# Builds the release products (the binaries we run and measure) with CLIPIT_BLAS's library,
# OpenBLAS into .build, another library into .build-<library>.
build_release() {
    ensure_blis
    ensure_mkl
    log "building release ($CLIPIT_BLAS)"
    (cd "$CLIPIT_ROOT" && swift build -c release "${CLIPIT_SCRATCH[@]}" "${CLIPIT_LINK_FLAGS[@]}" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2) \
        || die "release build failed"
    CLIPIT_BIN="$(release_bin_path)"
    export CLIPIT_BIN
}
