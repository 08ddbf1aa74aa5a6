# t/milter/common.sh - shared setup of the milter tests (sourced after t/lib.sh).
#
#   rg_milter_keys DIR            rsa.pem (RSA-2048) and ed.pem (Ed25519) in DIR, mode 0600
#   rg_milter_conf FILE [extra]   relayguard.conf with a dkim block for the keys in
#                                 $RG_TMP/keys: example.com dual (rsa1 + ed1),
#                                 rsa.test (rsa1), ed.test (ed1); extra lines on stdin
#   rg_milter_txt CONF OUT        the public keys as "NAME TXT" lines (verifier input)
#   rg_start_milter CONF [SOCKET] MILTER_SOCK MILTER_PID MILTER_LOG (default: a unix
#                                 socket in $RG_TMP; "inet" for a free loopback port,
#                                 then MILTER_PORT)
#   rg_stop_milter                SIGTERM, wait; 0 when it exited 0 (ASan clean)
#   rg_verify_dkimpy TXT FILE..   "ok N" lines; 0 when all verify
#   rg_verify_opendkim TXT FILE   0 when OpenDKIM says dkim=pass for every signature
RG_BIN_MILTER="$top_builddir/milter/relayguard-milter"
RG_PY=/usr/bin/python3          # Debian's python, where python3-dkim lives

rg_milter_keys() {
    local d=$1
    mkdir -p "$d"; chmod 700 "$d"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/rsa.pem" 2>/dev/null
    openssl genpkey -algorithm ED25519 -out "$d/ed.pem" 2>/dev/null
    chmod 600 "$d/rsa.pem" "$d/ed.pem"
}

rg_milter_conf() {
    local f=$1 k="$RG_TMP/keys"
    [ -f "$k/rsa.pem" ] || rg_milter_keys "$k"
    {
        echo "store = $REDIS_URL"
        echo "node = test"
        echo "log = stderr"
        echo "log_level = ${RG_MILTER_LOG_LEVEL:-info}"
        echo "store_timeout = 1s"
        echo "dkim {"
        echo "    key = example.com rsa1 $k/rsa.pem"
        echo "    key = example.com ed1 $k/ed.pem"
        echo "    key = rsa.test rsa1 $k/rsa.pem"
        echo "    key = ed.test ed1 $k/ed.pem"
        echo "}"
        cat
    } >"$f"
}

rg_milter_txt() {
    "$RG_BIN_CLI" -c "$1" --json dkim list | "$RG_PY" -c '
import json, sys
for k in json.load(sys.stdin):
    print(k["selector"] + "._domainkey." + k["domain"], k["txt"])' >"$2"
}

rg_start_milter() {
    local conf=$1 sock=${2:-}
    rg_require_built "$RG_BIN_MILTER"
    if [ "$sock" = inet ]; then
        MILTER_PORT=$(rg_free_port)
        MILTER_SOCK="inet:$MILTER_PORT@127.0.0.1"
    else
        MILTER_SOCK=${sock:-"unix:$RG_TMP/milter.sock"}
    fi
    MILTER_LOG="$RG_TMP/milter.log"
    "$RG_BIN_MILTER" -f -c "$conf" -l "$MILTER_SOCK" >>"$MILTER_LOG" 2>&1 &
    MILTER_PID=$!
    rg_on_exit "rg_stop_pid $MILTER_PID"
    local i
    for ((i = 0; i < 200; i++)); do
        case $MILTER_SOCK in
        inet:*) (exec 3<>"/dev/tcp/127.0.0.1/$MILTER_PORT") 2>/dev/null && return 0 ;;
        *) [ -S "${MILTER_SOCK#*:}" ] && return 0 ;;
        esac
        kill -0 "$MILTER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "Bail out! relayguard-milter did not start"
    sed 's/^/# /' "$MILTER_LOG" | tail -20
    exit 1
}

rg_stop_milter() {
    local pid=${1:-$MILTER_PID} i
    kill -TERM "$pid" 2>/dev/null || return 1
    for ((i = 0; i < 600; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; wait "$pid" 2>/dev/null; return 1; fi
    wait "$pid" 2>/dev/null
}

rg_verify_dkimpy() {
    local txt=$1; shift
    "$RG_PY" "$top_srcdir/t/milter/dkimverify.py" "$txt" "$@"
}

# OpenDKIM's verifier (opendkim -t) with the keys from a file instead of DNS.
rg_verify_opendkim() {
    local txt=$1 file=$2 d="$RG_TMP/opendkim" out pass fail
    mkdir -p "$d"; chmod 700 "$d"
    cp "$txt" "$d/keys.txt"
    printf 'Mode v\nTestPublicKeys %s/keys.txt\nSyslog no\n' "$d" >"$d/opendkim.conf"
    out=$(opendkim -vvv -x "$d/opendkim.conf" -t "$file" 2>&1)
    pass=$(printf '%s\n' "$out" | grep -c 'dkim=pass')
    fail=$(printf '%s\n' "$out" | grep -Ec 'dkim=(fail|neutral|permerror|temperror|policy)')
    RG_OPENDKIM_PASS=$pass
    [ "$pass" -ge 1 ] && [ "$fail" = 0 ]
}

# --- local submission and Sendmail (local*.sh, sendmail.sh) ------------------
#   rg_milter_load FILE           relayguard load FILE, or bail out
#   rg_milter_postfix_local CONF  smtp-sink, the milter on CONF (inet) and a private
#                                 Postfix with smtpd_milters and non_smtpd_milters on it
#   rg_test_user PREFIX           a unix user PREFIX<pid> (16 chars), removed at exit;
#                                 its name in RG_USER
#   rg_local_lock                 root or skip; one test at a time (the wrapper copy
#                                 reads the one file local-sendmail.conf)
#   rg_local_wrapper PREFIX       a key group PREFIX<pid> (TGROUP), removed at exit, the
#                                 local key $PUB/local.key only it reads, and the wrapper
#                                 copy $W set-group-id to it (WRAPPER_BUILT, PUB, W)
#   rg_sendmail_unpack            SM_ROOT, SM_BIN, SM_CF: sendmail-bin and sendmail-cf
#                                 unpacked (not installed: they conflict with Postfix)
#                                 into /var/tmp and reused; skip when that cannot be
#   rg_sendmail_sink              smtp-sink on 127.0.0.2 (SINK_PORT, SINK_DIR)
#   rg_sendmail_mta_cf            SM_DIR, SM_PORT and $SM_DIR/test.cf: an MTA on SM_PORT
#                                 with the milter on MILTER_PORT, relaying to the sink;
#                                 the status of m4
#   rg_sendmail_start             the MTA on a host named mta.relay.test, or bail out
rg_milter_load() {
    rg_cli load "$1" >/dev/null || { echo "Bail out! relayguard load failed"; exit 1; }
}

rg_milter_postfix_local() {
    rg_start_sink
    rg_start_milter "$1" inet
    POLICYD_PORT=0
    rg_start_postfix local \
        "smtpd_recipient_restrictions =" "smtpd_end_of_data_restrictions =" \
        "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" "non_smtpd_milters = inet:127.0.0.1:$MILTER_PORT" \
        "milter_default_action = tempfail" "milter_protocol = 6"
}

rg_test_user() {
    RG_USER="$1$$"; RG_USER=${RG_USER:0:16}
    useradd -M -d /nonexistent -s /bin/sh "$RG_USER" || { echo "Bail out! useradd $RG_USER failed"; exit 1; }
    rg_on_exit "userdel '$RG_USER'"
}

rg_local_lock() {
    [ "$(id -u)" = 0 ] || skip_all "needs root (test users, a set-group-id wrapper)"
    exec 9>"$top_builddir/t/milter/local-sendmail.lock"
    flock 9
}

rg_local_wrapper() {
    TGROUP="$1$$"; TGROUP=${TGROUP:0:16}
    groupadd "$TGROUP" || { echo "Bail out! groupadd $TGROUP failed"; exit 1; }
    rg_on_exit "groupdel '$TGROUP'"
    PUB="$RG_TMP/pub"; mkdir -p "$PUB"; chmod 755 "$PUB"
    openssl rand -hex 32 >"$PUB/local.key"
    chgrp "$TGROUP" "$PUB/local.key"; chmod 640 "$PUB/local.key"
    W="$PUB/relayguard-sendmail"
    cp "$WRAPPER_BUILT" "$W"; chgrp "$TGROUP" "$W"; chmod 2755 "$W"
}

rg_sendmail_unpack() {
    SM_ROOT=${RG_SENDMAIL_ROOT:-/var/tmp/relayguard-sendmail/root}
    SM_BIN="$SM_ROOT/usr/libexec/sendmail/sendmail"
    SM_CF="$SM_ROOT/usr/share/sendmail/cf"
    if [ ! -x "$SM_BIN" ] || [ ! -f "$SM_CF/m4/cf.m4" ]; then
        local d f
        d=$(dirname "$SM_ROOT")
        mkdir -p "$d"
        ( cd "$d" && apt-get download sendmail-bin sendmail-cf >/dev/null 2>&1 &&
          for f in sendmail-bin_*.deb sendmail-cf_*.deb; do dpkg -x "$f" root; done ) ||
            skip_all "cannot download sendmail-bin/sendmail-cf to unpack"
    fi
    ldd "$SM_BIN" | grep -q 'not found' && skip_all "Sendmail's libraries are missing (apt-get install libwrap0)"
    return 0
}

# The sink on 127.0.0.2: Sendmail drops a smart host that is one of its own
# addresses ([127.0.0.1] is in class w).
rg_sendmail_sink() {
    SINK_PORT=$(rg_free_port)
    SINK_DIR="$RG_TMP/sink"; mkdir -p "$SINK_DIR/mail"; chown nobody "$SINK_DIR/mail"
    smtp-sink -u nobody -d "$SINK_DIR/mail/%M." "127.0.0.2:$SINK_PORT" 100 >"$SINK_DIR/sink.log" 2>&1 &
    rg_on_exit "rg_stop_pid $!"
}

# (SM_DIR is 755: the MSP of local-sendmail.sh runs as a test user)
rg_sendmail_mta_cf() {
    SM_DIR="$RG_TMP/sendmail"; mkdir -p "$SM_DIR/queue"; chmod 755 "$SM_DIR"; chmod 700 "$SM_DIR/queue"
    SM_PORT=$(rg_free_port)
    cat >"$SM_DIR/test.mc" <<MC
divert(0)dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`mta.relay.test')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`QUEUE_DIR', \`$SM_DIR/queue')dnl
define(\`STATUS_FILE', \`$SM_DIR/statistics')dnl
define(\`ALIAS_FILE', \`')dnl
define(\`confPID_FILE', \`$SM_DIR/sendmail.pid')dnl
define(\`SMART_HOST', \`[127.0.0.2]')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $SINK_PORT')dnl
define(\`ESMTP_MAILER_ARGS', \`TCP \$h $SINK_PORT')dnl
define(\`confDONT_BLAME_SENDMAIL', \`GroupWritableDirPathSafe')dnl
FEATURE(\`no_default_msa')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`nocanonify')dnl
DAEMON_OPTIONS(\`Port=$SM_PORT, Addr=127.0.0.1, Name=MTA')dnl
INPUT_MAIL_FILTER(\`relayguard', \`S=inet:$MILTER_PORT@127.0.0.1, F=T, T=S:10s;R:30s;E:2m')dnl
RELAY_DOMAIN(\`example.net')dnl
MAILER(\`smtp')dnl
MC
    m4 -D_CF_DIR_="$SM_CF/" "$SM_CF/m4/cf.m4" "$SM_DIR/test.mc" >"$SM_DIR/test.cf"
}

# Sendmail wants a qualified host name at start, before it reads the .cf;
# with an unqualified one that DNS does not know it sleeps a minute.  So it
# runs in its own UTS namespace named mta.relay.test.
rg_sendmail_start() {
    if unshare -u true 2>/dev/null; then
        unshare -u sh -c 'hostname mta.relay.test && exec "$@"' sh \
            "$SM_BIN" -C "$SM_DIR/test.cf" -bd -q1m -L rg-sendmail-test >"$SM_DIR/start.log" 2>&1
    else
        "$SM_BIN" -C "$SM_DIR/test.cf" -bd -q1m -L rg-sendmail-test >"$SM_DIR/start.log" 2>&1
    fi
    if ! rg_wait_port "$SM_PORT" 90; then
        echo "Bail out! Sendmail did not start on port $SM_PORT"
        { cat "$SM_DIR/start.log"; cat "$SM_DIR/sendmail.pid"; ss -tlnp "sport = :$SM_PORT"; } 2>&1 | sed 's/^/# /'
        exit 1
    fi
    rg_on_exit "kill \$(head -1 '$SM_DIR/sendmail.pid') 2>/dev/null"
}
