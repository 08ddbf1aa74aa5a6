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
