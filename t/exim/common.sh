# t/exim/common.sh - a real Exim for relayguard-exim.so tests (sourced after
# t/lib.sh).
#
# Exim conflicts with Postfix as a package, so its binary comes from Debian's
# exim4-daemon-heavy, unpacked (apt-get download + dpkg -x) into
# $RG_EXIM_ROOT and reused; its shared libraries are in scripts/lib.sh
# RG_DEPS.  Every test runs its own Exim: private config, spool and logs in
# $RG_TMP, a daemon only on a loopback port.
#
#   rg_exim_setup                 EXIM, RG_SO; the Debian-exim user
#   rg_exim_conf DIR [ACL-FILE]   DIR/exim.conf: the ACLs of
#                                 conf.examples/exim/acls.conf (or ACL-FILE),
#                                 PLAIN auth (any login, password "secret"),
#                                 delivery to the sink (SINK_PORT) with the
#                                 DKIM options of conf.examples/exim/transport.conf
#                                 RG_EXIM_MAIN, RG_EXIM_ROUTERS, RG_EXIM_TRANSPORTS:
#                                 more text for the main section, the first
#                                 routers, more transports
#   rg_exim_example FILE PART     a part of a conf.examples/exim file: the lines
#                                 after "# --- PART" up to the next "# --- "
#   rg_exim_be DIR EXPR..         exim -be: one line per expansion (or "Failed: ...")
#   rg_start_exim DIR             daemon on EXIM_PORT; EXIM_PID (queue runs
#                                 every 10 s, or RG_EXIM_QUEUE_RUN)
#   rg_exim_panic DIR             the panic log (empty when Exim never panicked)
RG_EXIM_ROOT=${RG_EXIM_ROOT:-/var/tmp/relayguard-exim/root}
EXIM="$RG_EXIM_ROOT/usr/sbin/exim4"
RG_SO="$top_builddir/exim-dlfunc/.libs/relayguard-exim.so"

rg_exim_setup() {
    rg_require swaks smtp-sink
    rg_require_built "$RG_BIN_CLI"
    [ -f "$RG_SO" ] || skip_all "relayguard-exim.so not built ($RG_SO)"
    if [ ! -x "$EXIM" ]; then
        local d
        d=$(dirname "$RG_EXIM_ROOT")
        mkdir -p "$d"
        # one test unpacks, the others (make -j) wait for it
        ( flock -w 120 9 || exit 1
          [ -x "$EXIM" ] && exit 0
          cd "$d" && apt-get download exim4-daemon-heavy >/dev/null 2>&1 &&
          dpkg -x exim4-daemon-heavy_*.deb "$(basename "$RG_EXIM_ROOT")" ) 9>"$d/.unpack.lock" ||
            skip_all "cannot download exim4-daemon-heavy to unpack"
    fi
    if ldd "$EXIM" | grep -q 'not found'; then
        skip_all "Exim's libraries are missing: $(ldd "$EXIM" | awk '/not found/ {print $1}' | tr '\n' ' ')(apt-get install libmariadb3 libidn12 libspf2-2)"
    fi
    # The binary is built for this user (exim_user cannot name another one
    # that it would have to look up as root first).
    id Debian-exim >/dev/null 2>&1 ||
        useradd --system --no-create-home --shell /usr/sbin/nologin Debian-exim 2>/dev/null ||
        id Debian-exim >/dev/null 2>&1 || skip_all "cannot create the Debian-exim user"
    # A module built with --enable-sanitizers needs the ASan runtime first in
    # Exim (which is not built with it); Exim's re-executions keep it through
    # keep_environment (rg_exim_conf).
    # The loader ignores LD_PRELOAD when a setuid binary is started by
    # another user (Exim re-executing itself as Debian-exim to deliver), so
    # sanitizer runs use a copy of Exim without the setuid bit; as root it
    # works the same.
    RG_EXIM_ENV=()
    if ldd "$RG_SO" | grep -q libasan; then
        local nosuid="$RG_EXIM_ROOT/../nosuid/exim4"
        if [ ! -x "$nosuid" ] || [ "$EXIM" -nt "$nosuid" ]; then
            mkdir -p "$(dirname "$nosuid")"
            cp "$EXIM" "$nosuid.$$" && chmod 755 "$nosuid.$$" && mv -f "$nosuid.$$" "$nosuid"
        fi
        EXIM=$(cd "$(dirname "$nosuid")" && pwd)/exim4
        mkdir -p "$RG_TMP/asan"; chmod 1777 "$RG_TMP/asan"
        RG_EXIM_ENV=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so)"
                     "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:log_path=$RG_TMP/asan/asan"
                     "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$RG_TMP/asan/ubsan")
    fi
}

# Run Exim (with the sanitizer runtime when the module needs it).
rg_exim() { "${RG_EXIM_ENV[@]}" "$EXIM" "$@"; }

# rg_exim_conf DIR [ACL-FILE]: a private Exim in DIR.
rg_exim_conf() {
    local dir=$1 acls=${2:-$top_srcdir/conf.examples/exim/acls.conf}
    mkdir -p "$dir/spool" "$dir/log"
    chown -R Debian-exim:Debian-exim "$dir/spool" "$dir/log"
    chmod 750 "$dir/spool"
    : "${EXIM_PORT:=$(rg_free_port)}"
    {
        cat <<EOF
# private Exim for relayguard tests
RELAYGUARD_SO = $RG_SO
RELAYGUARD_CONF = ${RG_CONF:?}
primary_hostname = mta.relay.test
qualify_domain = relay.test
spool_directory = $dir/spool
log_file_path = $dir/log/%slog
log_selector = +all -dnssec -tls_certificate_verified -tls_peerdn -tls_sni
exim_path = $EXIM
exim_user = Debian-exim
exim_group = Debian-exim
trusted_users = root
daemon_smtp_ports = $EXIM_PORT
local_interfaces = 127.0.0.1
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
smtp_accept_max = 200
smtp_accept_max_per_host = \${dlfunc{RELAYGUARD_SO}{rg_preload}{RELAYGUARD_CONF}{}}
smtp_accept_queue_per_connection = 0
keep_environment = LD_PRELOAD : ASAN_OPTIONS : UBSAN_OPTIONS
queue_run_in_order = false
acl_smtp_mail = acl_check_mail
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data
acl_not_smtp = acl_check_not_smtp
${RG_EXIM_MAIN:-}

begin acl
EOF
        cat "$acls"
        cat <<EOF

begin routers
${RG_EXIM_ROUTERS:-}
to_sink:
  driver = manualroute
  route_list = * 127.0.0.1::${SINK_PORT:-25}
  transport = remote_smtp
  self = send

begin transports
remote_smtp:
  driver = smtp
  allow_localhost
  hosts_try_fastopen =
EOF
        # the DKIM options exactly as conf.examples/exim/transport.conf ships them
        sed -n '/^  dkim_domain/,/^  dkim_canon/p' "$top_srcdir/conf.examples/exim/transport.conf"
        cat <<EOF

${RG_EXIM_TRANSPORTS:-}

begin retry
*   *   F,1h,1m

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if eq{\$auth3}{secret}}
  server_set_id = \$auth2
EOF
    } >"$dir/exim.conf"
    if ! out=$(rg_exim -C "$dir/exim.conf" -bV 2>&1) || ! printf '%s' "$out" | grep -q '^Exim version'; then
        echo "Bail out! Exim does not accept $dir/exim.conf"
        printf '%s\n' "$out" | sed 's/^/# /' | tail -20
        exit 1
    fi
}

rg_exim_example() {
    awk -v part="# --- $2" 'index($0, "# --- ") == 1 { on = index($0, part) == 1; next } on' "$1"
}

# Expressions go in on stdin (one per line, one Exim process for all):
# command-line arguments are limited to 256 bytes by Exim.
rg_exim_be() {
    local dir=$1; shift
    printf '%s\n' "$@" | rg_exim -C "$dir/exim.conf" -be 2>>"$dir/be.stderr" |
        sed -e 's/^> //' -e '/^>\{0,1\} *$/d'
}

rg_start_exim() {
    local dir=$1
    # RG_EXIM_QUEUE_RUN: the queue runner option ("" for none)
    rg_exim -C "$dir/exim.conf" -bd ${RG_EXIM_QUEUE_RUN--q10s} -oP "$dir/exim.pid" >"$dir/start.log" 2>&1
    if ! rg_wait_port "$EXIM_PORT" 15; then
        echo "Bail out! Exim did not start on port $EXIM_PORT"
        { cat "$dir/start.log"; cat "$dir/log/paniclog" "$dir/log/mainlog"; } 2>/dev/null | tail -20 | sed 's/^/# /'
        exit 1
    fi
    # Exim writes its pid file after it listens: on a busy machine the port
    # answers first, and an empty EXIM_PID would leave the daemon running
    # after the test (and fail a test that checks the daemon by its pid)
    local i
    for ((i = 0; i < 100; i++)); do
        EXIM_PID=$(cat "$dir/exim.pid" 2>/dev/null)
        [ -n "$EXIM_PID" ] && break
        sleep 0.05
    done
    if [ -z "$EXIM_PID" ]; then
        echo "Bail out! Exim listens on port $EXIM_PORT but wrote no pid file $dir/exim.pid"
        exit 1
    fi
    rg_on_exit "rg_stop_pid $EXIM_PID"
}

# (Exim re-executing itself as exim_user with -C logs "lost privilege" there:
# expected with a private config, so not counted.)
rg_exim_panic() { grep -v "exim user lost privilege for using -C option" "$1/log/paniclog" 2>/dev/null; }

# Sanitizer reports of the module in Exim processes (none when not built so).
rg_exim_asan_clean() { ! cat "$RG_TMP"/asan/* 2>/dev/null | grep -Eq 'ERROR: AddressSanitizer|runtime error:'; }

# rg_exim_send PORT LOGIN FROM TO [swaks args..]: like rg_send, but a reply
# Exim wrapped over several lines (it splits long ACL messages at about 75
# characters) comes back as one: "553 5.7.1 text".
rg_exim_send() {
    local log
    rg_send "$@" >/dev/null
    log=$(readlink -f "$(rg_last_swaks_log)")
    awk '
        /^<\*\* [0-9][0-9][0-9][- ]/ && !done {
            code = substr($0, 5, 3); t = substr($0, 9)
            if (n++ == 0) { r = code " " t } else { sub(/^[245]\.[0-9]+\.[0-9]+ /, "", t); r = r " " t }
            if (substr($0, 8, 1) == " ") done = 1
            next
        }
        /^ ?(->|~>) QUIT/ { quit = 1 }
        /^(<-|<~)  [0-9][0-9][0-9]/ && !quit && n == 0 { last = substr($0, 5) }
        END { print (n ? r : (last != "" ? last : "000 no SMTP reply")) }' "$log"
}

# rg_exim_as DIR USER ARGS..: run Exim as a unix user, as PHP's mail() does
# ("sendmail -t" as the site's user).  Exim keeps root for a -C config only
# when root or its own user calls it, so here it runs unprivileged as USER
# on a copy of DIR/exim.conf with its own spool and log and exim_user =
# USER: the same ACLs and module, and $originator_uid is USER's uid, as in
# a real installation.
rg_exim_as() {
    local dir=$1 user=$2; shift 2
    local conf="$dir/exim-$user.conf" envs=()
    if [ ! -f "$conf" ]; then
        mkdir -p "$dir/spool-$user" "$dir/log-$user"
        chown "$user" "$dir/spool-$user" "$dir/log-$user"
        sed -e "s|^spool_directory = .*|spool_directory = $dir/spool-$user|" \
            -e "s|^log_file_path = .*|log_file_path = $dir/log-$user/%slog|" \
            -e "s|^exim_user = .*|exim_user = $user|" \
            -e "s|^exim_group = .*|exim_group = $(id -gn "$user")|" "$dir/exim.conf" >"$conf"
    fi
    [ ${#RG_EXIM_ENV[@]} -eq 0 ] || envs=("${RG_EXIM_ENV[@]:1}")
    runuser -u "$user" -- env "${envs[@]}" "$EXIM" -C "$conf" "$@"
}

# rg_test_user NAME: a unix user for local submission (created if missing).
rg_test_user() {
    id "$1" >/dev/null 2>&1 || useradd --no-create-home --shell /bin/sh "$1" 2>/dev/null ||
        id "$1" >/dev/null 2>&1 || skip_all "cannot create the test user $1"
}
