# t/lib.sh - shared helpers for shell tests (sourced, bash).
#
# Every test prints TAP.  Real components are started in a private folder on
# free loopback ports and stopped by PID when the test exits.
#
#   . "$top_srcdir/t/lib.sh"
#   rg_require redis-server swaks       # skip (or, under CI, fail) when missing
#   rg_tmpdir                           # sets RG_TMP (removed at exit unless RG_KEEP=1)
#   rg_start_redis                      # sets REDIS_PORT, REDIS_URL, REDIS_PID
#   ok "$cond" "label";  is "$got" "$want" "label";  done_testing
set -u

top_srcdir=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
RG_BIN_POLICYD="$top_builddir/postfix-policyd/relayguard-policyd"
RG_BIN_CLI="$top_builddir/cli/relayguard"

_rg_n=0
_rg_failed=0
_rg_cleanups=()

# --- TAP ---------------------------------------------------------------
ok() {  # ok CONDITION-EXIT-STATUS LABEL   (pass 0 for success)
    _rg_n=$((_rg_n + 1))
    if [ "$1" = 0 ]; then echo "ok $_rg_n - $2"; else echo "not ok $_rg_n - $2"; _rg_failed=$((_rg_failed + 1)); fi
}
pass() { ok 0 "$1"; }
fail() { ok 1 "$1"; [ $# -gt 1 ] && diag "$2"; return 0; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
is() {  # is GOT WANT LABEL
    if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; diag "got:  '$1'" "want: '$2'"; fi
}
like() {  # like GOT REGEX LABEL
    if printf '%s' "$1" | grep -Eq -- "$2"; then ok 0 "$3"; else ok 1 "$3"; diag "got:  '$1'" "want match: /$2/"; fi
}
done_testing() { echo "1..$_rg_n"; [ "$_rg_failed" = 0 ]; }

# Skip the whole test when a component is missing.  Under CI a skip is a
# failure: CI must have everything.
skip_all() {
    if [ -n "${CI:-}" ]; then echo "1..1"; echo "not ok 1 - required component missing under CI: $*"; exit 1; fi
    echo "1..0 # SKIP $*"; exit 0
}
rg_require() {
    local p
    for p in "$@"; do
        command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || skip_all "$p not installed"
    done
}

# --- lifetime ------------------------------------------------------------
rg_on_exit() { _rg_cleanups+=("$*"); }
_rg_exit() {
    local i
    for ((i = ${#_rg_cleanups[@]} - 1; i >= 0; i--)); do eval "${_rg_cleanups[$i]}" >/dev/null 2>&1 || true; done
}
trap _rg_exit EXIT

rg_tmpdir() {
    RG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/rgtest.XXXXXX")
    chmod 755 "$RG_TMP"
    if [ -z "${RG_KEEP:-}" ]; then rg_on_exit "rm -rf '$RG_TMP'"; else diag "keeping $RG_TMP"; fi
}

# A free TCP port on 127.0.0.1 (the kernel picks it).
rg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until a TCP port accepts connections (max $2 seconds, default 10).
rg_wait_port() {
    local port=$1 max=${2:-10} i
    for ((i = 0; i < max * 20; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# Kill a PID and wait for it to go (max 5 s, then SIGKILL).
rg_stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null; return 0
}

# --- Redis ---------------------------------------------------------------
# rg_start_redis [PORT]: a private redis-server in $RG_TMP/redis-PORT.
rg_start_redis() {
    rg_require redis-server redis-cli
    REDIS_PORT=${1:-$(rg_free_port)}
    local dir="$RG_TMP/redis-$REDIS_PORT"
    mkdir -p "$dir"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --daemonize no --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" &
    REDIS_PID=$!
    rg_on_exit "rg_stop_pid $REDIS_PID"
    rg_wait_port "$REDIS_PORT" 10 || { echo "Bail out! redis-server did not start"; exit 1; }
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}
rg_redis() { redis-cli -p "$REDIS_PORT" "$@"; }

# Write a minimal relayguard.conf for the private Redis into $1 (extra lines on stdin).
rg_write_conf() {
    local f=$1
    {
        echo "store = $REDIS_URL"
        echo "node = test"
        echo "log = stderr"
        echo "store_timeout = 500ms"
        cat
    } > "$f"
}

# =========================================================================
# MTA helpers: smtp-sink, a private Postfix with SASL, relayguard-policyd,
# swaks.  Everything lives under $RG_TMP, listens on 127.0.0.1 and is
# stopped by PID at exit.
#
#   rg_start_sink                   SINK_PORT SINK_PID SINK_DIR; rg_sink_count
#   rg_start_policyd CONF [NAME]    POLICYD_PORT POLICYD_PID POLICYD_LOG
#   rg_start_postfix NAME [k=v..]   PF_PORT PF_DIR PF_CONF PF_LOG (uses
#                                   POLICYD_PORT and SINK_PORT as they are)
#   rg_sasl_user NAME LOGIN [PASS]  a SASL user of instance NAME
#   rg_swaks ARGS..                 prints the deciding reply "CODE X.Y.Z text"
#   rg_send PORT LOGIN FROM TO [swaks args..]
# =========================================================================

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac

# Wait until a command succeeds (max $1 seconds, polled every 0.1 s).
rg_wait_for() {
    local max=$1 i; shift
    for ((i = 0; i < max * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    "$@" >/dev/null 2>&1
}

# Ask the test binaries to exist; skip (fail under CI) when they do not.
rg_require_built() {
    local b
    for b in "$@"; do
        [ -x "$b" ] || skip_all "$(basename "$b") not built ($b)"
    done
}

# --- smtp-sink: the "internet" ---------------------------------------------
# rg_start_sink [NAME]: every message is dumped to one file under
# $SINK_DIR/mail, so rg_sink_count is the number of messages delivered.
rg_start_sink() {
    rg_require smtp-sink
    local name=${1:-sink}
    SINK_PORT=$(rg_free_port)
    SINK_DIR="$RG_TMP/$name-$SINK_PORT"
    mkdir -p "$SINK_DIR/mail"
    chown nobody "$SINK_DIR/mail"
    smtp-sink -u nobody -d "$SINK_DIR/mail/%Y%m%d/%H%M%S." \
        "127.0.0.1:$SINK_PORT" 1000 >"$SINK_DIR/sink.log" 2>&1 &
    SINK_PID=$!
    rg_on_exit "rg_stop_pid $SINK_PID"
    rg_wait_port "$SINK_PORT" 10 || { echo "Bail out! smtp-sink did not start: $(cat "$SINK_DIR/sink.log")"; exit 1; }
}
# Messages the sink has received (all of them, or those of sink dir $1).
rg_sink_count() {
    find "${1:-$SINK_DIR}/mail" -type f 2>/dev/null | wc -l
}
# Wait until the sink holds at least N messages (max T seconds, default 20);
# prints the count.
rg_wait_sink_count() {
    local n=$1 max=${2:-20} dir=${3:-$SINK_DIR} i c=0
    for ((i = 0; i < max * 10; i++)); do
        c=$(rg_sink_count "$dir"); [ "$c" -ge "$n" ] && break; sleep 0.1
    done
    echo "$c"
}
# Sink messages that contain a string (e.g. a unique header value).
rg_sink_grep() {
    grep -rlF -- "$1" "${2:-$SINK_DIR}/mail" 2>/dev/null | wc -l
}

# --- relayguard-policyd ------------------------------------------------------
# rg_start_policyd CONF [NAME]: runs in the foreground (-f) on a free port,
# log (stderr) in $POLICYD_LOG.
rg_start_policyd() {
    local conf=$1 name=${2:-policyd}
    rg_require_built "$RG_BIN_POLICYD"
    POLICYD_PORT=$(rg_free_port)
    POLICYD_LOG="$RG_TMP/$name-$POLICYD_PORT.log"
    "$RG_BIN_POLICYD" -f -c "$conf" -l "inet:127.0.0.1:$POLICYD_PORT" >>"$POLICYD_LOG" 2>&1 &
    POLICYD_PID=$!
    rg_on_exit "rg_stop_pid $POLICYD_PID"
    if ! rg_wait_port "$POLICYD_PORT" 10; then
        echo "Bail out! relayguard-policyd did not start:"
        sed 's/^/# /' "$POLICYD_LOG" | tail -20
        exit 1
    fi
}
# Did the log get sanitizer or crash reports?  0 when clean.
rg_log_clean() {
    ! grep -Eq 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer' "$1"
}
# Stop a policyd by PID with SIGTERM; 0 when it exited with status 0
# (ASan turns leaks and errors into a non-zero exit).
rg_stop_policyd() {
    local pid=$1 i rc
    kill -TERM "$pid" 2>/dev/null || return 1
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; wait "$pid" 2>/dev/null; return 1; fi
    wait "$pid" 2>/dev/null; rc=$?
    return $rc
}

# --- a private Postfix ------------------------------------------------------
# Postfix starts only from a config directory named in the default main.cf
# (alternate_config_directories).  Instead of adding every temporary folder
# there, a fixed set of slot names ($RG_PF_SLOTS/sN, symlinks to the
# instance's etc/) is listed once; an instance claims a free slot with an
# atomic mkdir and gives it back at exit.
RG_PF_SLOTS=${RG_PF_SLOTS:-/var/tmp/relayguard-postfix}
RG_PF_NSLOTS=32

_rg_pf_register_slots() {
    local main=/etc/postfix/main.cf cur want i missing=
    mkdir -p "$RG_PF_SLOTS"
    chmod 755 "$RG_PF_SLOTS"
    (
        flock -w 30 9 || exit 1
        [ -e "$main" ] || : >"$main"
        cur=$(postconf -c /etc/postfix -h alternate_config_directories 2>/dev/null)
        want=$cur
        for ((i = 0; i < RG_PF_NSLOTS; i++)); do
            case ", $cur," in *", $RG_PF_SLOTS/s$i,"*|*" $RG_PF_SLOTS/s$i,"*) ;; *)
                missing=1; want="${want:+$want, }$RG_PF_SLOTS/s$i" ;;
            esac
        done
        [ -z "$missing" ] || postconf -c /etc/postfix -e "alternate_config_directories = $want"
    ) 9>"$RG_PF_SLOTS/.lock"
}

# Claim a slot for config dir $1; prints the slot path.
_rg_pf_claim_slot() {
    local etc=$1 i lock pid
    for ((i = 0; i < RG_PF_NSLOTS; i++)); do
        lock="$RG_PF_SLOTS/s$i.lock"
        if ! mkdir "$lock" 2>/dev/null; then
            pid=$(cat "$lock/pid" 2>/dev/null)
            # stale: its owner is gone, or never wrote its pid in a minute
            if { [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; } ||
               { [ -z "$pid" ] && [ -n "$(find "$lock" -maxdepth 0 -mmin +1 2>/dev/null)" ]; }; then
                rm -rf "$lock"; mkdir "$lock" 2>/dev/null || continue
            else
                continue
            fi
        fi
        echo "$$" >"$lock/pid"
        ln -sfn "$etc" "$RG_PF_SLOTS/s$i"
        echo "$RG_PF_SLOTS/s$i"
        return 0
    done
    return 1
}

# Stop the instance whose config dir (slot) is $1 and private dir $2.
rg_stop_postfix() {
    local conf=$1 dir=$2 pid i
    pid=$(tr -dc 0-9 <"$dir/spool/pid/master.pid" 2>/dev/null)
    postfix -c "$conf" stop >/dev/null 2>&1
    if [ -n "$pid" ]; then
        for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    return 0
}

# rg_start_postfix NAME [key=value ...]
#   A private Postfix in $RG_TMP/postfix-NAME: smtpd on PF_PORT, SASL from
#   its own sasldb, relayhost = the sink (SINK_PORT), relayguard-policyd
#   (POLICYD_PORT) consulted at RCPT and at end of data.  key=value pairs
#   override main.cf settings.  Sets PF_PORT, PF_DIR, PF_CONF (for
#   postfix -c / postqueue -c), PF_LOG; also RG_PF_PORT[NAME] etc.
declare -A RG_PF_PORT RG_PF_DIR RG_PF_CONF
rg_start_postfix() {
    local name=$1; shift
    rg_require postfix saslpasswd2 swaks
    : "${SINK_PORT:?rg_start_sink first}" "${POLICYD_PORT:?rg_start_policyd first}"
    local dir="$RG_TMP/postfix-$name" slot kv
    PF_PORT=$(rg_free_port)
    mkdir -p "$dir/etc/sasl" "$dir/spool" "$dir/data"
    chown postfix "$dir/data"
    _rg_pf_register_slots || { echo "Bail out! cannot register Postfix slots in /etc/postfix/main.cf"; exit 1; }
    slot=$(_rg_pf_claim_slot "$dir/etc") || { echo "Bail out! no free Postfix slot in $RG_PF_SLOTS"; exit 1; }
    rg_on_exit "rm -rf '$slot.lock'; rm -f '$slot'"

    sed -E -e '/^[a-z#]/!b' -e '/^#/b' \
        -e 's/^([^ ]+[ ]+[^ ]+[ ]+[^ ]+[ ]+[^ ]+[ ]+)[^ ]+/\1n/' \
        /usr/share/postfix/master.cf.dist |
    sed -E "s/^smtp[ ]+inet .*/$PF_PORT      inet  n       -       n       -       -       smtpd/" >"$dir/etc/master.cf"

    cat >"$dir/etc/main.cf" <<CF
# private Postfix "$name" for relayguard tests
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
syslog_name = postfix-$name
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = $name.relay.test
mydomain = relay.test
mydestination =
local_recipient_maps =
relay_domains =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
smtp_host_lookup = native
smtpd_peername_lookup = no
biff = no
append_dot_mydomain = no
delay_warning_time = 0
smtputf8_enable = no

smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $dir/etc/sasl
smtpd_sasl_security_options = noanonymous

# the policy sees every recipient (authenticated or not) and the end of data
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:$POLICYD_PORT
smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.1:$POLICYD_PORT
smtpd_policy_service_default_action = 451 4.3.5 relayguard policy service unavailable
smtpd_policy_service_timeout = 10s
smtpd_policy_service_max_idle = 300s
smtpd_policy_service_max_ttl = 1000s
CF
    cat >"$dir/etc/sasl/smtpd.conf" <<SASL
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $dir/etc/sasldb2
SASL
    for kv in "$@"; do postconf -c "$dir/etc" -e "$kv"; done

    PF_DIR=$dir PF_CONF=$slot PF_LOG="$dir/maillog"
    RG_PF_PORT[$name]=$PF_PORT RG_PF_DIR[$name]=$dir RG_PF_CONF[$name]=$slot
    rg_on_exit "rg_stop_postfix '$slot' '$dir'"
    if ! postfix -c "$slot" start >"$dir/start.log" 2>&1 || ! rg_wait_port "$PF_PORT" 15; then
        echo "Bail out! private Postfix '$name' did not start"
        { cat "$dir/start.log"; script -qc "postfix -c $slot check" /dev/null; tail -20 "$dir/maillog"; } 2>&1 | sed 's/^/# /'
        exit 1
    fi
    # smtpd starts per connection: a bad setting shows only now.
    local banner=
    banner=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PF_PORT; head -c 3 <&3; printf 'QUIT\r\n' >&3" 2>/dev/null)
    if [ "$banner" != 220 ]; then
        echo "Bail out! private Postfix '$name' does not greet with 220 (got '$banner')"
        grep -E 'fatal|error|warning' "$dir/maillog" | tail -10 | sed 's/^/# /'
        exit 1
    fi
    # The slot stays taken while the master runs (even if this shell is gone).
    tr -dc 0-9 <"$dir/spool/pid/master.pid" >"$slot.lock/pid" 2>/dev/null || true
}

# rg_sasl_user NAME LOGIN [PASSWORD]: LOGIN is user@realm (or user).
rg_sasl_user() {
    local dir=${RG_PF_DIR[$1]:?unknown postfix instance $1} login=$2 pass=${3:-secret} user realm
    user=${login%@*}; realm=
    [ "$user" = "$login" ] || realm=${login#*@}
    printf '%s' "$pass" | saslpasswd2 -p -c -f "$dir/etc/sasldb2" ${realm:+-u "$realm"} "$user"
    chown root:postfix "$dir/etc/sasldb2"; chmod 640 "$dir/etc/sasldb2"
}

# Messages still in the queue of instance NAME.
rg_pf_queue_count() {
    local dir=${RG_PF_DIR[$1]:?}
    find "$dir/spool/incoming" "$dir/spool/active" "$dir/spool/deferred" "$dir/spool/maildrop" -type f 2>/dev/null | wc -l
}
# "status=sent" lines in the maillog of instance NAME.
rg_pf_sent_count() {
    grep -c 'status=sent' "${RG_PF_DIR[$1]:?}/maillog" 2>/dev/null || true
}

# --- swaks ----------------------------------------------------------------
# rg_swaks ARGS...: run one swaks session and print the reply that decided
# it, as "CODE X.Y.Z text": the first error reply (4xx/5xx) if there was
# one, else the last reply before QUIT (the DATA "queued" reply, or the
# reply of the --quit-after stage).  "000 ..." when no SMTP reply came.
# Sets RG_SWAKS_RC (swaks exit code) and RG_SWAKS_LOG (the transcript);
# both stay in the subshell when called as r=$(rg_swaks ...).
rg_swaks() {
    RG_SWAKS_LOG=$(mktemp "$RG_TMP/swaks.XXXXXX")
    swaks --timeout 30 --helo client.test "$@" >"$RG_SWAKS_LOG" 2>&1
    RG_SWAKS_RC=$?
    ln -sf "$RG_SWAKS_LOG" "$RG_TMP/swaks.last"
    _rg_note_queued "$RG_SWAKS_LOG"
    rg_swaks_reply "$RG_SWAKS_LOG"
}
# The transcript of the latest swaks session (also after rg_swaks ran in a
# $(...) subshell, where RG_SWAKS_LOG does not come back).
rg_last_swaks_log() { echo "$RG_TMP/swaks.last"; }
# Every "250 ... queued as ID" a test saw is one line of $RG_TMP/queued.log
# (a file, so that sends in subshells and in the background count too).
_rg_note_queued() {
    grep -Eo '^(<-|<~)  250 .*queued as [0-9A-Za-z]+' "$1" | sed 's/.*queued as //' >>"$RG_TMP/queued.log"
}
# Messages the MTA accepted (queued) in this test so far.
rg_queued_count() { cat "$RG_TMP/queued.log" 2>/dev/null | wc -l; }
# Wait until the sink has every queued message (max 30 s); TAP result.
rg_check_delivered() {
    local want got
    want=$(rg_queued_count)
    got=$(rg_wait_sink_count "$want" 30)
    is "$got" "$want" "nothing lost: every accepted message reached the sink ($got of $want)"
}
# The deciding reply of a swaks transcript (see rg_swaks).
rg_swaks_reply() {
    awk '
        /^<\*\* [0-9][0-9][0-9]/ && err == "" { err = substr($0, 5) }
        /^ ?(->|~>) QUIT/ { quit = 1 }
        /^(<-|<~)  [0-9][0-9][0-9]/ && !quit { last = substr($0, 5) }
        END {
            r = (err != "") ? err : last
            if (r == "") r = "000 no SMTP reply"
            sub(/^[0-9][0-9][0-9]-/, substr(r, 1, 3) " ", r)
            print r
        }' "$1"
}
# rg_send PORT LOGIN FROM TO [more swaks args]: one message, SASL PLAIN as
# LOGIN (password $RG_SASL_PASS, default "secret"; LOGIN "" = no AUTH).
# Prints the deciding reply like rg_swaks.
rg_send() {
    local port=$1 login=$2 from=$3 to=$4; shift 4
    local auth=()
    [ -z "$login" ] || auth=(--auth PLAIN --auth-user "$login" --auth-password "${RG_SASL_PASS:-secret}")
    rg_swaks --server "127.0.0.1:$port" "${auth[@]}" --from "$from" --to "$to" "$@"
}
# The reply code (first 3 characters) of a reply line.
rg_code() { printf '%s' "${1:0:3}"; }

# --- more helpers for integration tests ------------------------------------
# rg_cli ARGS..: the relayguard CLI on $RG_CONF.
rg_cli() { "$RG_BIN_CLI" -c "${RG_CONF:?}" "$@"; }

# rg_policy_query PORT attr=value...: one raw Postfix policy request
# (request=smtpd_access_policy is added); prints the action (empty on error).
rg_policy_query() {
    local port=$1 fd line ans=; shift
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    { printf 'request=smtpd_access_policy\n'; printf '%s\n' "$@"; printf '\n'; } >&"$fd"
    while IFS= read -r -t 10 line <&"$fd"; do
        [ -z "$line" ] && break
        case $line in action=*) ans=${line#action=} ;; esac
    done
    exec {fd}>&-
    printf '%s\n' "$ans"
}
# rg_wait_policyd_ready PORT attr=value...: wait (max 10 s) until a request
# gets an answer that is not a temporary failure, e.g. until the accounts
# are loaded.  Prints the last answer.
rg_wait_policyd_ready() {
    local port=$1 i a=; shift
    for ((i = 0; i < 100; i++)); do
        a=$(rg_policy_query "$port" "$@" 2>/dev/null)
        case $a in ''|4[0-9][0-9]*|DEFER*) sleep 0.1 ;; *) break ;; esac
    done
    printf '%s\n' "$a"
}

# rg_send_sized PORT LOGIN FROM TO BYTES [nosize]: one message of about
# BYTES bytes with Python's smtplib, declaring MAIL FROM:<..> SIZE=n (unless
# "nosize").  Prints the deciding reply like rg_swaks.
rg_send_sized() {
    RG_QUEUED_LOG="$RG_TMP/queued.log" python3 - "$@" <<'PY'
import os, smtplib, sys
queued = os.environ["RG_QUEUED_LOG"]
port, login, frm, to, nbytes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
declare = not (len(sys.argv) > 6 and sys.argv[6] == "nosize")
line = "x" * 76 + "\r\n"
body = line * max(1, nbytes // len(line))
msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: size test\r\n\r\n%s" % (frm, to, body)).encode()
def reply(code, text):
    if isinstance(text, bytes): text = text.decode("utf-8", "replace")
    return "%d %s" % (code, " ".join(text.split("\n")))
try:
    s = smtplib.SMTP("127.0.0.1", int(port), "client.test", timeout=30)
    s.ehlo()
    if login: s.login(login, "secret")
    for code, text in (s.mail(frm, ["SIZE=%d" % len(msg)] if declare else []), s.rcpt(to)):
        if code >= 400:
            print(reply(code, text)); s.quit(); sys.exit(0)
    r = reply(*s.data(msg))
    print(r)
    if r.startswith("250") and "queued as" in r:
        with open(queued, "a") as f: f.write(r.split("queued as ")[1].strip() + "\n")
    s.quit()
except smtplib.SMTPResponseException as e:
    print(reply(e.smtp_code, e.smtp_error))
except Exception as e:
    print("000 %s" % e)
PY
}

# rg_mkmmdb OUT NET CC [NET CC ...]: a GeoIP2-Country .mmdb for tests.
rg_mkmmdb() {
    perl "$top_srcdir/t/integration/mkmmdb.pl" "$@"
}

# Redis with an append-only file (fsync always), so that a kill -9 and a
# restart on the same port keep the data: rg_start_redis_aof [PORT].
# rg_kill_redis kills it hard; rg_start_redis_aof "$REDIS_PORT" brings it back.
rg_start_redis_aof() {
    rg_require redis-server redis-cli
    REDIS_PORT=${1:-$(rg_free_port)}
    local dir="$RG_TMP/redis-$REDIS_PORT"
    mkdir -p "$dir"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --save '' \
        --appendonly yes --appendfsync always \
        --daemonize no --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" &
    REDIS_PID=$!
    rg_on_exit "rg_stop_pid $REDIS_PID"
    rg_wait_port "$REDIS_PORT" 10 || { echo "Bail out! redis-server did not start"; exit 1; }
    rg_wait_for 10 bash -c "redis-cli -p $REDIS_PORT ping | grep -q PONG"
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}
rg_kill_redis() {
    kill -9 "$REDIS_PID" 2>/dev/null
    { wait "$REDIS_PID"; } 2>/dev/null
    return 0
}

# Milliseconds since the epoch.
rg_now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# A test killed by its runner (timeout, ^C) still stops what it started.
trap 'exit 143' TERM
trap 'exit 130' INT
