# scripts/lib.sh - shared by scripts/demo and scripts/test-all (sourced, bash).
#
#   rg_install_deps     install every Debian package the build and the tests
#                       need (idempotent: no apt at all when all are there)
#   rg_bootstrap        autoreconf -fi when configure is missing or older
#   rg_build DIR [configure args]   configure + make in DIR (out of tree)
#   say / warn / die    messages on stderr

RG_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac
export PATH

if [ -t 2 ]; then _rg_b=$'\e[1m' _rg_r=$'\e[31m' _rg_g=$'\e[32m' _rg_0=$'\e[0m'; else _rg_b= _rg_r= _rg_g= _rg_0=; fi
say()  { printf '%s==> %s%s\n' "$_rg_b" "$*" "$_rg_0" >&2; }
warn() { printf '%swarning: %s%s\n' "$_rg_r" "$*" "$_rg_0" >&2; }
die()  { printf '%serror: %s%s\n' "$_rg_r" "$*" "$_rg_0" >&2; exit 1; }

# Everything the build (./configure) and the tests (make check) use, from
# Debian 12's own archive.  Add a package here when a test starts needing it.
RG_DEPS=(
    # build
    build-essential autoconf automake libtool pkg-config
    libhiredis-dev libevent-dev libmaxminddb-dev libssl-dev libcmocka-dev
    libmilter-dev
    libgmime-3.0-dev
    libmicrohttpd-dev
    libsodium-dev
    # tests: store, MTA, SMTP tools, GeoIP data, DKIM verifiers, milter driver
    redis-server redis-tools
    postfix sasl2-bin libsasl2-modules libsasl2-modules-db swaks
    mmdb-bin libmaxmind-db-writer-perl
    python3 python3-dkim opendkim-tools miltertest
    procps util-linux
    # metrics tests (issue 5): scrape with curl, parse with the Prometheus client's parser
    curl python3-prometheus-client
    # milter tests (issue 3): OpenDKIM as verifier and peer, Ed25519 for dkimpy,
    # Sendmail's libraries (sendmail-bin/-cf themselves are unpacked, not installed)
    opendkim python3-nacl libwrap0 m4
    # relayguard-webhookd (issue 5): libcurl; its tests use curl, python3 and openssl(1)
    libcurl4-openssl-dev openssl
    # relayguard-exim.so (issue 4): Exim's dlfunc header; the libraries of
    # Exim's binary (exim4-daemon-heavy itself is unpacked, not installed)
    exim4-dev libmariadb3 libidn12 libspf2-2
)

rg_need_root() {
    [ "$(id -u)" = 0 ] || die "run as root (sudo $0): it installs packages and starts a private Postfix"
}

# Packages of RG_DEPS that are not installed (one per line).
rg_missing_deps() {
    local p
    for p in "${RG_DEPS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

rg_install_deps() {
    local missing
    missing=$(rg_missing_deps)
    if [ -z "$missing" ]; then
        say "dependencies: all ${#RG_DEPS[@]} packages installed"
        return 0
    fi
    rg_need_root
    command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian 12; install by hand: $(echo $missing)"
    say "installing: $(echo $missing)"
    # apt-get update only when the package lists are missing or older than a day
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null || die "apt-get update failed"
    fi
    # Postfix without questions, and without touching a configured system Postfix
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing </dev/null ||
        die "apt-get install failed"
    missing=$(rg_missing_deps)
    [ -z "$missing" ] || die "still missing after apt-get install: $(echo $missing)"
}

# autoreconf when the source tree has no configure (a git checkout) or when
# configure.ac or a local.mk is newer than it.
rg_bootstrap() {
    if [ ! -x "$RG_SRC/configure" ] || [ ! -f "$RG_SRC/Makefile.in" ] ||
       [ -n "$(find "$RG_SRC" -maxdepth 2 \( -name configure.ac -o -name Makefile.am -o -name local.mk \) -newer "$RG_SRC/Makefile.in" 2>/dev/null | head -1)" ]; then
        say "autoreconf -fi"
        (cd "$RG_SRC" && autoreconf -fi) || die "autoreconf failed"
    fi
}

# rg_build DIR [configure args...]: configure (once per set of args) and make.
rg_build() {
    local dir=$1; shift
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ] || [ "$(cat "$dir/.rg-configure-args" 2>/dev/null)" != "$*" ]; then
        say "configure $* (in $dir)"
        (cd "$dir" && "$RG_SRC/configure" -q "$@") || die "configure failed (see $dir/config.log)"
        printf '%s' "$*" >"$dir/.rg-configure-args"
    fi
    say "make -j$jobs (in $dir)"
    make -C "$dir" -j"$jobs" >"$dir/make.log" 2>&1 || { tail -40 "$dir/make.log" >&2; die "make failed (full log: $dir/make.log)"; }
}
